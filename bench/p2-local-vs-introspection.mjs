// P2: median latency of a local PEP decision (enforcer.authorize on an in-process request with
// a fresh DPoP proof) against RFC 7662 introspection of the same token, one per request,
// against the broker over loopback. Target: local ≥ 50× faster.
import { createPublicKey, verify } from 'node:crypto';
import { BrokerClient } from '../packages/client/dist/index.js';
import { createEnforcer } from '../packages/pep/dist/index.js';
import { BenchTenant, REQUIREMENT, startBrokers } from './lib/broker.mjs';
import { mintProofs } from './lib/proofs.mjs';
import { ms, percentile, times } from './lib/stats.mjs';

export const title = 'Local PEP decision vs RFC 7662 introspection per request (median latency)';

const LOCAL = Number(process.env.TETHER_BENCH_P2_LOCAL ?? 3000);
const REMOTE = Number(process.env.TETHER_BENCH_P2_INTROSPECTIONS ?? 600);
const AUDIENCE = 'https://p2.bench.example';
const URL_PATH = '/status';
const TARGET = 50;

async function waitFresh(enforcer) {
  const deadline = Date.now() + 20_000;
  while (!enforcer.state().fresh) {
    if (Date.now() > deadline) throw new Error(`the enforcer never got fresh: ${enforcer.state().lastError}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Times `count` sequential decisions, each with a proof of its own; answers the latencies (ms). */
async function localDecisions(enforcer, token, proofs, from, count) {
  const latencies = [];
  for (let i = from; i < from + count; i++) {
    const t0 = performance.now();
    const decision = await enforcer.authorize({
      method: 'GET',
      url: URL_PATH,
      headers: { authorization: `DPoP ${token}`, dpop: proofs[i] },
      ...REQUIREMENT,
    });
    latencies.push(performance.now() - t0);
    if (!decision.allow)
      throw new Error(`the PEP refused a valid request: ${decision.code} ${decision.description}`);
  }
  return latencies;
}

/** For reference: one bare node:crypto Ed25519 verification of each proof (what no PEP can go below). */
function rawVerifications(publicJwk, proofs) {
  const key = createPublicKey({ key: publicJwk, format: 'jwk' });
  return proofs.map((proof) => {
    const t0 = performance.now();
    const dot = proof.lastIndexOf('.');
    if (!verify(null, Buffer.from(proof.slice(0, dot)), key, Buffer.from(proof.slice(dot + 1), 'base64url')))
      throw new Error('a minted proof does not verify');
    return performance.now() - t0;
  });
}

/** Times `count` sequential introspections of `token` (one keep-alive connection, like a PEP's client). */
async function introspections(brokerUrl, bearer, token, count) {
  const latencies = [];
  const body = new URLSearchParams({ token }).toString();
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const response = await fetch(`${brokerUrl}/oauth/introspect`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    const answer = await response.json();
    latencies.push(performance.now() - t0);
    if (answer.active !== true)
      throw new Error(`introspection answered ${response.status} ${JSON.stringify(answer)}`);
  }
  return latencies;
}

export async function run({ log }) {
  const brokers = await startBrokers();
  let enforcer;
  try {
    const tenant = new BenchTenant(brokers);
    const pep = await tenant.principal('p2-pep', 'service', ['pep']);
    await tenant.grant(AUDIENCE);
    const session = await tenant.session();
    enforcer = createEnforcer({
      broker: brokers.urls[0],
      issuer: brokers.publicUrl,
      audience: AUDIENCE,
      tenant: brokers.tenant,
      publicBaseUrl: AUDIENCE,
      identity: { principal: pep.principal, key: pep.key },
      decisions: false,
    });
    enforcer.start();
    await waitFresh(enforcer);

    const warm = Math.round(LOCAL / 10);
    const proofs = await mintProofs(session, {
      method: 'GET',
      url: `${AUDIENCE}${URL_PATH}`,
      accessToken: session.token,
      count: warm + LOCAL,
    });
    await localDecisions(enforcer, session.token, proofs, 0, warm);
    const local = await localDecisions(enforcer, session.token, proofs, warm, LOCAL);
    log(`local: p50 ${ms(percentile(local, 50))} over ${LOCAL} decisions`);
    const floor = rawVerifications(session.key.publicJwk, proofs.slice(warm));

    // The PEP's own broker-API token, as a PEP calling introspection would hold it (Bearer:
    // the cheapest caller authentication the broker accepts, so the comparison favours introspection).
    const bearer = await new BrokerClient({ identity: pep, dpop: false }).bearerToken();
    await introspections(brokers.urls[0], bearer, session.token, Math.round(REMOTE / 10));
    const remote = await introspections(brokers.urls[0], bearer, session.token, REMOTE);
    log(`introspection: p50 ${ms(percentile(remote, 50))} over ${REMOTE} calls`);

    const ratio = percentile(remote, 50) / percentile(local, 50);
    return {
      rows: [
        [
          'local decision (enforcer.authorize): p50 / p99',
          `${ms(percentile(local, 50))} / ${ms(percentile(local, 99))}`,
        ],
        [
          'introspection (POST /oauth/introspect): p50 / p99',
          `${ms(percentile(remote, 50))} / ${ms(percentile(remote, 99))}`,
        ],
        [
          'reference: one bare Ed25519 verification (node:crypto) of the proof, p50',
          ms(percentile(floor, 50)),
        ],
        ['samples (local / introspection)', `${LOCAL} / ${REMOTE}`],
      ],
      verdicts: [
        {
          figure: 'introspection p50 ÷ local p50',
          value: times(ratio),
          target: `≥ ${TARGET}×`,
          met: ratio >= TARGET,
        },
        {
          figure:
            'introspection p50 ÷ bare signature verification p50 (the most a local check of a fresh proof can reach)',
          value: times(percentile(remote, 50) / percentile(floor, 50)),
        },
      ],
      notes: [
        'Local: the whole decision — token (verified-token cache hit), fresh DPoP proof (one Ed25519 verification, replay cache), mirror, staleness, entitlement — sequential calls, each with a proof of its own.',
        'Introspection: the round trip only (fetch, keep-alive, Bearer-authenticated PEP, JSON answer parsed) against the broker in its own process on SQLite, logging at warn; a PEP relying on it would still have to verify the proof locally.',
      ],
    };
  } finally {
    await enforcer?.close();
    await brokers.stop();
  }
}
