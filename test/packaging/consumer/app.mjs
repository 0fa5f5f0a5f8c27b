// Runs in an empty project outside the workspace, against the packed and installed packages:
// every import below resolves through that project's node_modules. It protects a Node http
// server and a fastify server with the PEP, runs a session with the client SDK against the
// broker the test started, and prints what it saw as one JSON line.
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { BoundSession, BrokerClient, createDpopProof, loadIdentity } from '@tether-broker/client';
import { createEnforcer, decisionOf, tetherFastify, tetherMiddleware } from '@tether-broker/pep';
import { createAccessTokenVerifier, ReplayCache, remoteKeySource } from '@tether-broker/pep/core';
import { ERROR_CATALOGUE, PROBLEM_MEDIA_TYPE } from '@tether-broker/protocol';
import Fastify from 'fastify';

const config = JSON.parse(process.env.TETHER_PACK_CONFIG ?? '{}');
// The test's broker runs on its own clock; this process keeps in step with it.
const now = () => Date.now() + config.clockOffsetMs;
const results = {};

results.resolved = Object.fromEntries(
  ['@tether-broker/client', '@tether-broker/pep', '@tether-broker/pep/core', '@tether-broker/protocol'].map(
    (name) => [name, fileURLToPath(import.meta.resolve(name))],
  ),
);

async function until(what, check, withinMs = 20_000) {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const b64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const parts = (token) => token.split('.');
const payloadOf = (token) => JSON.parse(Buffer.from(parts(token)[1], 'base64url').toString());

async function answer(response) {
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    wwwAuthenticate: response.headers.get('www-authenticate'),
    body,
  };
}

// --- the protected service: Node http + tetherMiddleware -------------------------------------
const pepIdentity = loadIdentity(config.pepIdentity);
let guard;
const server = createServer((req, res) => {
  guard(req, res, (err) => {
    if (err) {
      res.writeHead(500).end();
      return;
    }
    const decision = decisionOf(req);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ released: req.url, session: decision.session, principal: decision.principal }));
  });
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const serviceUrl = `http://127.0.0.1:${server.address().port}`;

const pep = createEnforcer({
  broker: pepIdentity.broker,
  audience: config.audience,
  tenant: pepIdentity.tenant,
  publicBaseUrl: serviceUrl,
  identity: { principal: pepIdentity.principal, key: pepIdentity.key },
  now,
  reconnect: { minDelayMs: 20, maxDelayMs: 200 },
});
guard = tetherMiddleware(pep, (req) => ({
  action: 'deploy:release',
  resource: `app/${new URL(req.url ?? '/', serviceUrl).pathname.split('/')[2] ?? ''}`,
}));
pep.start();

// --- the same service on fastify, with an enforcer of its own ---------------------------------
// Its routes are registered before it listens, and its enforcer needs its URL before that.
const fastifyPort = await new Promise((resolve) => {
  const probe = createServer();
  probe.listen(0, '127.0.0.1', () => {
    const { port } = probe.address();
    probe.close(() => resolve(port));
  });
});
const fastifyUrl = `http://127.0.0.1:${fastifyPort}`;
const fastifyPep = createEnforcer({
  broker: pepIdentity.broker,
  audience: config.audience,
  tenant: pepIdentity.tenant,
  publicBaseUrl: fastifyUrl,
  identity: { principal: pepIdentity.principal, key: pepIdentity.key },
  now,
  reconnect: { minDelayMs: 20, maxDelayMs: 200 },
});
const service = Fastify();
await service.register(tetherFastify(fastifyPep));
service.post(
  '/releases/:app',
  { tether: { action: 'deploy:release', resource: (request) => `app/${request.params.app}` } },
  async (request) => ({
    released: request.url,
    session: request.tether.session,
    principal: request.tether.principal,
  }),
);
service.addHook('onClose', () => fastifyPep.close());
fastifyPep.start();
await service.listen({ port: fastifyPort, host: '127.0.0.1' });

await until('the PEPs to be fresh', () => pep.state().fresh && fastifyPep.state().fresh);

// --- the client: a session, its requests, and forgeries --------------------------------------
const client = new BrokerClient({ identity: loadIdentity(config.clientIdentity), now });
const created = await client.call('POST', '/v1/requests', {
  privilege: 'deploy',
  ticket: 'CHG-7',
  justification: 'packaging test',
  duration: 900,
});
const session = await BoundSession.activate(client, created.id);
const releaseUrl = `${serviceUrl}/releases/web`;

results.allowed = await answer(await session.fetch(releaseUrl, { method: 'POST' }));
results.sessionId = session.info.id;
results.otherResource = await answer(await session.fetch(`${serviceUrl}/releases/api`, { method: 'POST' }));
results.anonymous = await answer(await fetch(releaseUrl, { method: 'POST' }));
const fastifyReleaseUrl = `${fastifyUrl}/releases/web`;
results.fastify = {
  allowed: await answer(await session.fetch(fastifyReleaseUrl, { method: 'POST' })),
  otherResource: await answer(await session.fetch(`${fastifyUrl}/releases/api`, { method: 'POST' })),
};

const token = await session.accessToken();
const [header, , signature] = parts(token);
const forgeries = {
  // alg none, no signature.
  unsigned: `${b64url({ alg: 'none', typ: 'at+jwt' })}.${b64url(payloadOf(token))}.`,
  // The broker's header and signature over a widened entitlement.
  tampered: `${header}.${b64url({
    ...payloadOf(token),
    authorization_details: [
      { type: 'tether_privilege', privilege: 'deploy', actions: ['*'], resources: ['**'] },
    ],
  })}.${signature}`,
};
results.forged = {};
for (const [name, forged] of Object.entries(forgeries)) {
  // A valid proof by the session's own key: only the token is wrong.
  const proof = await createDpopProof(session.key, {
    method: 'POST',
    url: releaseUrl,
    accessToken: forged,
    now: now(),
  });
  const response = await fetch(releaseUrl, {
    method: 'POST',
    headers: { authorization: `DPoP ${forged}`, dpop: proof },
  });
  results.forged[name] = await answer(response);
}

// The core verifier alone (no Node) accepts the real token with a fresh proof.
const verifier = createAccessTokenVerifier({
  issuer: pepIdentity.broker,
  audience: config.audience,
  tenant: pepIdentity.tenant,
  publicBaseUrl: serviceUrl,
  keys: remoteKeySource(`${pepIdentity.broker}/.well-known/jwks.json`, { now }),
  replayCache: new ReplayCache({ maxEntries: 1000, now }),
  now,
});
const verified = await verifier.verify({
  method: 'POST',
  path: '/releases/web',
  authorization: `DPoP ${token}`,
  dpop: await createDpopProof(session.key, {
    method: 'POST',
    url: releaseUrl,
    accessToken: token,
    now: now(),
  }),
});
results.coreVerified = { sid: verified.claims.sid, jkt: verified.proof.jkt === session.key.jkt };

// --- the session ends; once the broker says this PEP applied that, the same request is refused
await session.end();
results.receipt = await until('the end to be enforced', async () => {
  const receipt = await session.receipt();
  return receipt.enforced ? receipt : undefined;
});
results.afterEnd = await answer(await session.fetch(releaseUrl, { method: 'POST' }));
results.fastify.afterEnd = await answer(await session.fetch(fastifyReleaseUrl, { method: 'POST' }));
results.problemMediaType = PROBLEM_MEDIA_TYPE;
results.catalogued = ['invalid_token', 'insufficient_scope'].every((code) => code in ERROR_CATALOGUE);

await pep.close();
await service.close();
server.close();
process.stdout.write(`${JSON.stringify(results)}\n`);
