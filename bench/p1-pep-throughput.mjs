// P1: throughput of a node:http server protected by the PEP (a fresh DPoP proof per request,
// the token reused) ÷ throughput of the same server doing exactly one synchronous Ed25519
// verification (node:crypto) of the request's own DPoP proof. Target ≥ 0.8 (issue #16). The
// same with one asynchronous WebCrypto verification, and a server checking nothing (the
// harness's ceiling), for information. The servers are measured interleaved, three
// repetitions, the order rotating; the verdict is the median of the three ratios.
import autocannon from 'autocannon';
import { BenchTenant, REQUIREMENT, startBrokers } from './lib/broker.mjs';
import { Child } from './lib/processes.mjs';
import { mintProofs } from './lib/proofs.mjs';
import { int, times } from './lib/stats.mjs';

export const title = 'PEP-protected server throughput ÷ one synchronous signature verification per request';

const REQUESTS = Number(process.env.TETHER_BENCH_P1_REQUESTS ?? 20_000);
const REPETITIONS = 3;
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
  const r = await loadTest(origin, token, proofs, { next: 0 }, REQUESTS);
  const refused = Object.entries(r.statusCodeStats ?? {})
    .filter(([code]) => !code.startsWith('2'))
    .map(([code, { count }]) => `${count}×${code}`);
  const figures = {
    rps: r.requests.total / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    total: r.requests.total,
    ok: r['2xx'],
    bad: r.non2xx + r.errors + r.timeouts,
    detail: [
      ...refused,
      ...(r.errors ? [`${r.errors} errors`] : []),
      ...(r.timeouts ? [`${r.timeouts} timeouts`] : []),
    ],
  };
  log(
    `  ${name}: ${int(figures.rps)} req/s, p50 ${figures.p50} ms, ${figures.ok} × 2xx, ${figures.bad} other`,
  );
  return figures;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const spread = (values) =>
  `${times(Math.min(...values))} / ${times(median(values))} / ${times(Math.max(...values))}`;

const SERVERS = [
  { id: 'pep', name: 'PEP' },
  { id: 'sync', name: 'floor, node:crypto verify (sync)' },
  { id: 'async', name: 'floor, crypto.subtle.verify (async)' },
  { id: 'plain', name: 'harness ceiling (no check)' },
];

async function startServers(brokers, tenant, servers) {
  const pep = await tenant.principal('p1-pep', 'service', ['pep']);
  await tenant.grant(AUDIENCE);
  const session = await tenant.session();
  const start = async (mode, options) => {
    const child = new Child(SERVER, `P1 ${mode} server`);
    servers.push(child);
    child.send({ type: 'start', mode, ...options });
    return (await child.expect('started', { timeoutMs: 30_000 })).origin;
  };
  const origins = {
    pep: await start('pep', {
      broker: brokers.urls[0],
      issuer: brokers.publicUrl,
      audience: AUDIENCE,
      tenant: brokers.tenant,
      identity: { principal: pep.principal, key: pep.key },
      requirement: REQUIREMENT,
    }),
    sync: await start('floor-sync', { publicJwk: session.key.publicJwk }),
    async: await start('floor-async', { publicJwk: session.key.publicJwk }),
    plain: await start('plain', {}),
  };
  return { session, origins };
}

/**
 * Each server is warmed up first, then all are measured in an order that rotates with the
 * repetition. The PEP gets proofs minted just before its turn (their `iat` well within its
 * 60 s window, however slow the others were); the floors get the latest minted ones, the same
 * requests (they check the signature only, so a proof seen before is fine).
 */
async function repetitions(session, origins, log) {
  const runs = Object.fromEntries(SERVERS.map((s) => [s.id, []]));
  const mint = (count) =>
    mintProofs(session, { method: 'GET', url: `${origins.pep}${PATH}`, accessToken: session.token, count });
  const warmProofs = await mint(WARMUP);
  for (const s of SERVERS) await loadTest(origins[s.id], session.token, warmProofs, { next: 0 }, WARMUP);
  let proofs;
  for (let rep = 0; rep < REPETITIONS; rep++) {
    log(`repetition ${rep + 1} of ${REPETITIONS}`);
    for (let i = 0; i < SERVERS.length; i++) {
      const s = SERVERS[(i + rep) % SERVERS.length];
      if (s.id === 'pep' || proofs === undefined) proofs = await mint(REQUESTS + 4 * CONNECTIONS);
      runs[s.id].push(await measure(s.name, origins[s.id], session.token, proofs, log));
    }
  }
  return runs;
}

export async function run({ log }) {
  const brokers = await startBrokers();
  const servers = [];
  try {
    const { session, origins } = await startServers(brokers, new BenchTenant(brokers), servers);
    const runs = await repetitions(session, origins, log);
    const ratios = (a, b) => runs[a].map((r, i) => r.rps / runs[b][i].rps);
    const pepToSync = ratios('pep', 'sync');
    const refusedShare = runs.pep.reduce((n, r) => n + r.bad, 0) / (REQUESTS * REPETITIONS);
    const floorsClean = ['sync', 'async', 'plain'].every((id) => runs[id].every((r) => r.bad === 0));
    const valid = refusedShare <= 0.001 && floorsClean;
    // A floor close to the harness's ceiling is bounded by the load generator, not by the verification.
    const floorBound = median(ratios('sync', 'plain')) >= 0.9;
    const rows = [];
    for (const s of SERVERS) {
      const rps = runs[s.id].map((r) => r.rps).sort((a, b) => a - b);
      rows.push([`${s.name}: throughput min / median / max`, `${rps.map(int).join(' / ')} req/s`]);
      // autocannon records latencies in whole milliseconds.
      rows.push([`${s.name}: latency p50 / p99 (median repetition)`, latencyOf(runs[s.id])]);
      const bad = runs[s.id].reduce((n, r) => n + r.bad, 0);
      const detail = runs[s.id].flatMap((r) => r.detail);
      rows.push([
        `${s.name}: responses 2xx / other`,
        `${int(runs[s.id].reduce((n, r) => n + r.ok, 0))} / ${int(bad)}${detail.length ? ` (${detail.join(', ')})` : ''}`,
      ]);
    }
    rows.push(['PEP ÷ sync floor, per repetition', pepToSync.map(times).join(', ')]);
    rows.push(['async floor ÷ sync floor: min / median / max', spread(ratios('async', 'sync'))]);
    rows.push(['PEP ÷ async floor: min / median / max', spread(ratios('pep', 'async'))]);
    rows.push(['sync floor ÷ harness ceiling: min / median / max', spread(ratios('sync', 'plain'))]);
    return {
      rows,
      verdicts: [
        {
          figure: `PEP ÷ sync floor throughput, median of ${REPETITIONS} (min / median / max ${spread(pepToSync)})`,
          value: times(median(pepToSync)),
          target: `≥ ${TARGET}`,
          met: valid && median(pepToSync) >= TARGET,
        },
      ],
      notes: notes(valid, floorBound),
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await brokers.stop();
  }
}

function latencyOf(figures) {
  const m = [...figures].sort((a, b) => a.rps - b.rps)[Math.floor(figures.length / 2)];
  return `${m.p50} / ${m.p99} ms`;
}

function notes(valid, floorBound) {
  return [
    `${int(REQUESTS)} measured requests per server and repetition, ${REPETITIONS} repetitions interleaved (the four servers one after the other, the order rotating each repetition), after ${int(WARMUP)} warm-up requests per server; autocannon, ${CONNECTIONS} connections, no pipelining, in the runner's process; each server in its own process (one thread of JavaScript), the broker in another.`,
    'Every request carries the same access token and a proof never sent before to that server (minted just before the PEP’s turn, distinct jti, iat within the window); the PEP verifies the token once (verified-token cache), then per request the whole RFC 9449 check of the proof (one Ed25519 signature through jose / WebCrypto, htm, htu, iat, ath, cnf.jkt, single-use jti), the revocation mirror and the entitlement. The sync floor does one node:crypto Ed25519 verification of the same proof and nothing else.',
    'The PEP runs with decision reporting off (it would load the broker, which shares this machine with the load generator).',
    ...(valid ? [] : ['**Invalid run**: some requests were refused or failed (see the responses rows).']),
    ...(floorBound
      ? [
          '**Caution**: the sync floor reached ≥ 90 % of the harness ceiling, so it measures the load generator more than the verification; the ratio is flattering.',
        ]
      : []),
  ];
}
