// P1: throughput of a node:http server protected by the PEP (a fresh DPoP proof per request,
// the token reused) ÷ throughput of the same server doing exactly one raw Ed25519
// verification of a same-size JWS per request — the request's own DPoP proof — the floor
// being the better of node:crypto (sync) and WebCrypto (async). Target ≥ 0.8.
import autocannon from 'autocannon';
import { BenchTenant, REQUIREMENT, startBrokers } from './lib/broker.mjs';
import { Child } from './lib/processes.mjs';
import { mintProofs } from './lib/proofs.mjs';
import { int, times } from './lib/stats.mjs';

export const title = 'PEP-protected server throughput ÷ one raw signature verification per request';

const REQUESTS = Number(process.env.TETHER_BENCH_P1_REQUESTS ?? 20_000);
const WARMUP = Math.max(500, Math.round(REQUESTS / 10));
const CONNECTIONS = 16;
const PATH = '/status';
const AUDIENCE = 'https://p1.bench.example';
const TARGET = 0.8;
const SERVER = new URL('./lib/p1-server.mjs', import.meta.url);

/**
 * Drives `origin` with autocannon: every request carries the session's token and the next
 * proof of `proofs` (none sent twice while there are more proofs than requests).
 */
function loadTest(origin, token, proofs, cursor, amount) {
  return autocannon({
    url: origin,
    connections: CONNECTIONS,
    pipelining: 1,
    amount,
    // With `amount`, autocannon notices the end only at its next sample: the default (1 s)
    // would round every run's duration up to whole seconds.
    sampleInt: 10,
    timeout: 10,
    headers: { authorization: `DPoP ${token}` },
    requests: [
      {
        method: 'GET',
        path: PATH,
        setupRequest: (req) => {
          req.headers.dpop = proofs[cursor.next++ % proofs.length];
          return req;
        },
      },
    ],
  });
}

async function measure(name, origin, token, proofs, log) {
  const cursor = { next: 0 };
  await loadTest(origin, token, proofs, cursor, WARMUP);
  const r = await loadTest(origin, token, proofs, cursor, REQUESTS);
  const ok = r['2xx'];
  const refused = Object.entries(r.statusCodeStats ?? {})
    .filter(([code]) => !code.startsWith('2'))
    .map(([code, { count }]) => `${count}×${code}`);
  const figures = {
    name,
    rps: r.requests.total / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    total: r.requests.total,
    ok,
    bad: r.non2xx + r.errors + r.timeouts,
    detail: [
      ...refused,
      ...(r.errors ? [`${r.errors} errors`] : []),
      ...(r.timeouts ? [`${r.timeouts} timeouts`] : []),
    ],
  };
  log(`${name}: ${int(figures.rps)} req/s, p50 ${figures.p50} ms, ${ok} × 2xx, ${figures.bad} other`);
  return figures;
}

export async function run({ log }) {
  const brokers = await startBrokers();
  const servers = [];
  try {
    const tenant = new BenchTenant(brokers);
    const pep = await tenant.principal('p1-pep', 'service', ['pep']);
    await tenant.grant(AUDIENCE);
    const session = await tenant.session();
    const start = async (mode, options) => {
      const child = new Child(SERVER, `P1 ${mode} server`);
      servers.push(child);
      child.send({ type: 'start', mode, ...options });
      return (await child.expect('started', { timeoutMs: 30_000 })).origin;
    };
    const pepOrigin = await start('pep', {
      broker: brokers.urls[0],
      issuer: brokers.publicUrl,
      audience: AUDIENCE,
      tenant: brokers.tenant,
      identity: { principal: pep.principal, key: pep.key },
      requirement: REQUIREMENT,
    });
    const floorSync = await start('floor-sync', { publicJwk: session.key.publicJwk });
    const floorAsync = await start('floor-async', { publicJwk: session.key.publicJwk });
    const plain = await start('plain', {});

    const count = WARMUP + REQUESTS + 4 * CONNECTIONS;
    log(`minting ${int(count)} DPoP proofs for ${pepOrigin}${PATH}`);
    const proofs = await mintProofs(session, {
      method: 'GET',
      url: `${pepOrigin}${PATH}`,
      accessToken: session.token,
      count,
    });
    // The PEP first, while the proofs are well within their 60 s `iat` window. The floors get
    // the very same requests (they check the signature only, so a proof seen before is fine).
    const guarded = await measure('PEP', pepOrigin, session.token, proofs, log);
    const sync = await measure('floor, node:crypto verify (sync)', floorSync, session.token, proofs, log);
    const async = await measure(
      'floor, crypto.subtle.verify (async)',
      floorAsync,
      session.token,
      proofs,
      log,
    );

    const ceiling = await measure('harness ceiling (no check)', plain, session.token, proofs, log);
    const floor = sync.rps >= async.rps ? sync : async;
    // A floor close to the harness's ceiling is bounded by the load generator, not by the verification.
    const floorBound = floor.rps >= 0.9 * ceiling.rps;
    const ratio = guarded.rps / floor.rps;
    const refusedShare = guarded.bad / Math.max(1, guarded.total);
    const valid = refusedShare <= 0.001 && sync.bad === 0 && async.bad === 0;
    const rows = [];
    for (const f of [guarded, sync, async, ceiling]) {
      rows.push([`${f.name}: throughput`, `${int(f.rps)} req/s`]);
      // autocannon records latencies in whole milliseconds.
      rows.push([`${f.name}: latency p50 / p99`, `${f.p50} / ${f.p99} ms`]);
      rows.push([
        `${f.name}: responses 2xx / other`,
        `${int(f.ok)} / ${int(f.bad)}${f.detail.length ? ` (${f.detail.join(', ')})` : ''}`,
      ]);
    }
    rows.push(['DPoP proof (= JWS verified by the floor) size', `${proofs[0].length} bytes`]);
    return {
      rows,
      verdicts: [
        {
          figure: `PEP ÷ floor (${floor === sync ? 'sync' : 'async'}) throughput`,
          value: times(ratio),
          target: `≥ ${TARGET}`,
          met: valid && ratio >= TARGET,
        },
      ],
      notes: [
        `${int(REQUESTS)} measured requests per server after ${int(WARMUP)} warm-up ones; autocannon, ${CONNECTIONS} connections, no pipelining, in the runner's process; each server in its own process, the broker in a third.`,
        'Every request carries the same access token and a proof never sent before to that server (minted beforehand, distinct jti, iat within the window); the PEP verifies the token once (verified-token cache), then one Ed25519 signature per request — the proof — as the floor does.',
        'The PEP runs with decision reporting off (it would load the broker, which shares this machine with the load generator).',
        ...(valid ? [] : ['**Invalid run**: some requests were refused or failed (see the responses rows).']),
        ...(floorBound
          ? [
              '**Caution**: the floor reached ≥ 90 % of the harness ceiling, so it measures the load generator more than the verification; the ratio is flattering.',
            ]
          : []),
      ],
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await brokers.stop();
  }
}
