// The load of the token-endpoint benchmark, in its own process: a fixed number of clients, each
// in a loop doing one grant after the other with a fresh client assertion (private_key_jwt)
// and a fresh DPoP proof minted just before it is sent (jose). Refresh clients follow their
// rotation chain: each refresh spends the token the previous one returned.
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';
import { calculateJwkThumbprint, importJWK, SignJWT } from 'jose';
import { serveParent } from './processes.mjs';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Targets by name: `{ tokenUrl, htu, clients: [...] }`, each client with its keys and chain. */
const targets = new Map();

async function signerOf(privateJwk) {
  const { d: _d, ...publicJwk } = privateJwk;
  return {
    key: await importJWK(privateJwk, 'EdDSA'),
    publicJwk: { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x },
  };
}

/** A DPoP proof (RFC 9449) for POST `htu`, fresh `jti` and `iat`. */
function dpopProof(dpop, htu) {
  return new SignJWT({ htm: 'POST', htu, jti: randomUUID() })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'dpop+jwt', jwk: dpop.publicJwk })
    .setIssuedAt()
    .sign(dpop.key);
}

/** An RFC 7523 client assertion: iss = sub = the client, aud = the token endpoint, 60 s life. */
function clientAssertion(auth) {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'EdDSA', kid: auth.kid })
    .setIssuer(auth.clientId)
    .setSubject(auth.clientId)
    .setAudience(auth.audience)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('60s')
    .sign(auth.signer.key);
}

function post(agent, url, form, dpop) {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
          dpop,
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** One grant by one client; answers the time on the wire (minting excluded), throws on a refusal. */
async function grantOnce(target, client, grant) {
  const form = { grant_type: grant };
  if (grant === 'refresh_token') form.refresh_token = client.refreshToken;
  else if (target.scope) form.scope = target.scope;
  if (client.auth && (grant === 'client_credentials' || target.authenticatesRefresh)) {
    form.client_id = client.auth.clientId;
    form.client_assertion_type = JWT_BEARER;
    form.client_assertion = await clientAssertion(client.auth);
  }
  const proof = await dpopProof(client.dpop, target.htu);
  const t0 = performance.now();
  const answer = await post(target.agent, target.tokenUrl, form, proof);
  const elapsed = performance.now() - t0;
  if (answer.status !== 200) throw new Error(`${grant}: HTTP ${answer.status} ${answer.text.slice(0, 300)}`);
  const json = JSON.parse(answer.text);
  if (json.token_type !== 'DPoP') throw new Error(`${grant}: token_type ${json.token_type}`);
  if (grant === 'refresh_token') {
    if (!json.refresh_token || json.refresh_token === client.refreshToken)
      throw new Error('refresh: the refresh token was not rotated');
    client.refreshToken = json.refresh_token;
  }
  return elapsed;
}

serveParent({
  /**
   * `{ name, tokenUrl, htu, scope?, authenticatesRefresh, clients: [{ dpopJwk, refreshToken?,
   * auth?: { clientId, kid, audience, privateJwk } }] }`: registers a target; answers the
   * clients' DPoP key thumbprints (to bind refresh tokens to).
   */
  async target(t) {
    const clients = [];
    for (const c of t.clients) {
      clients.push({
        dpop: await signerOf(c.dpopJwk),
        refreshToken: c.refreshToken,
        auth: c.auth && { ...c.auth, signer: await signerOf(c.auth.privateJwk) },
      });
    }
    targets.set(t.name, {
      ...t,
      clients,
      agent: new Agent({ keepAlive: true, maxSockets: clients.length }),
    });
    return {
      type: 'target',
      jkts: await Promise.all(t.clients.map((c) => calculateJwkThumbprint(c.dpopJwk))),
    };
  },

  /** `{ name, clients?: refresh tokens }`: gives the target's clients their refresh tokens. */
  async chains({ name, refreshTokens }) {
    const target = targets.get(name);
    target.clients.forEach((c, i) => {
      c.refreshToken = refreshTokens[i];
    });
    return { type: 'chains' };
  },

  /** `{ name, grant, requests }`: every client in a loop until `requests` are done. */
  async run({ name, grant, requests }) {
    const target = targets.get(name);
    const latencies = [];
    let issued = 0;
    const started = performance.now();
    await Promise.all(
      target.clients.map(async (client) => {
        while (issued < requests) {
          issued++;
          latencies.push(await grantOnce(target, client, grant));
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    return { type: 'ran', done: latencies.length, seconds, latencies };
  },
});
