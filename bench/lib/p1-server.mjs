// The protected server of P1, in its own process (autocannon runs in the runner's). Three
// variants of the same node:http server answering `200 ok`:
// - `pep`: guarded by createEnforcer + tetherMiddleware, following a real broker;
// - `floor-sync`: exactly one Ed25519 verification of the request's DPoP JWS with node:crypto;
// - `floor-async`: the same with WebCrypto (crypto.subtle);
// - `plain`: no check at all — the ceiling of this harness (server, loopback, load generator).
import { createPublicKey, verify } from 'node:crypto';
import { createServer } from 'node:http';
import { createEnforcer, tetherMiddleware } from '../../packages/pep/dist/index.js';
import { serveParent } from './processes.mjs';

const OK = (res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
const REFUSED = (res) => res.writeHead(401, { 'content-type': 'text/plain' }).end('refused');

let server;
let enforcer;

/** The signing input and signature of a compact JWS; undefined when it is not one. */
function jwsParts(header) {
  const jws = typeof header === 'string' ? header : undefined;
  const dot = jws?.lastIndexOf('.') ?? -1;
  if (dot < 0) return undefined;
  return { input: Buffer.from(jws.slice(0, dot)), signature: Buffer.from(jws.slice(dot + 1), 'base64url') };
}

async function floorHandler(mode, publicJwk) {
  if (mode === 'plain') return (_req, res) => OK(res);
  if (mode === 'floor-sync') {
    const key = createPublicKey({ key: publicJwk, format: 'jwk' });
    return (req, res) => {
      const jws = jwsParts(req.headers.dpop);
      if (jws && verify(null, jws.input, key, jws.signature)) OK(res);
      else REFUSED(res);
    };
  }
  const key = await crypto.subtle.importKey('jwk', publicJwk, { name: 'Ed25519' }, false, ['verify']);
  return async (req, res) => {
    const jws = jwsParts(req.headers.dpop);
    if (jws && (await crypto.subtle.verify({ name: 'Ed25519' }, key, jws.signature, jws.input))) OK(res);
    else REFUSED(res);
  };
}

async function pepHandler(options, origin) {
  enforcer = createEnforcer({
    broker: options.broker,
    issuer: options.issuer,
    audience: options.audience,
    tenant: options.tenant,
    publicBaseUrl: origin,
    identity: options.identity,
    // Decision reports would load the broker, which shares the machine with the load generator.
    decisions: false,
  });
  enforcer.start();
  const deadline = Date.now() + 20_000;
  while (!enforcer.state().fresh) {
    if (Date.now() > deadline) throw new Error(`the enforcer never got fresh: ${enforcer.state().lastError}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const guard = tetherMiddleware(enforcer, () => options.requirement);
  return (req, res) => guard(req, res, () => OK(res));
}

serveParent(
  {
    /** `{ mode, publicJwk }` for a floor; `{ mode: 'pep', broker, issuer, audience, tenant, identity, requirement }`. */
    async start(options) {
      server = createServer({ keepAlive: true });
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
      const origin = `http://127.0.0.1:${server.address().port}`;
      const handler =
        options.mode === 'pep'
          ? await pepHandler(options, origin)
          : await floorHandler(options.mode, options.publicJwk);
      server.on('request', handler);
      return { type: 'started', origin };
    },
  },
  async () => {
    await enforcer?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve) ?? resolve());
  },
);
