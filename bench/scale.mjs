// Scale: activation, refresh and end latency with 1k, 10k and 100k live sessions in the tenant.
// One broker process per size, each on its own durable SQLite file (WAL, synchronous=FULL),
// seeded in bulk straight into the file while its broker is stopped (see lib/scale-seed.mjs:
// through the API, 111,000 activations would take ~20 minutes). Then, interleaved across the
// sizes, three repetitions: each op (request untimed; activation, refresh, end timed at the
// client, over HTTP, DPoP proofs included) one at a time, and the signed status list of the
// session's list fetched after the end (re-signed: a bit changed) and again (served from cache).
// Target: largest ÷ smallest p50 ≤ 1.2 for each of activation, refresh and end.
import { decodeJwt } from 'jose';
import { BoundSession, generateSessionKey } from '../packages/client/dist/index.js';
import { BenchTenant } from './lib/broker.mjs';
import { ScaleBroker } from './lib/scale-broker.mjs';
import { countCostMs, seedLiveSessions } from './lib/scale-seed.mjs';
import { int, ms, percentile, times } from './lib/stats.mjs';

const SIZES = (process.env.TETHER_BENCH_SCALE_SIZES ?? '1000,10000,100000').split(',').map(Number);
const OPS = Number(process.env.TETHER_BENCH_SCALE_OPS ?? 100);
const REPETITIONS = Number(process.env.TETHER_BENCH_SCALE_REPETITIONS ?? 3);
const WARMUP = 10;
const TARGET = 1.2;
const AUDIENCE = 'https://scale.bench.example';
const OPERATIONS = ['activation', 'refresh', 'end'];

export const title = `Scale: activation, refresh and end with ${SIZES.map(int).join(' / ')} live sessions (SQLite)`;

/** One size: its broker, seeded with `size` live sessions besides the template. */
async function prepare(size, log) {
  const broker = new ScaleBroker(`${int(size)}`);
  try {
    const tenant = new BenchTenant(await broker.start());
    await tenant.grant(AUDIENCE);
    const template = await tenant.session();
    await broker.stop();
    const seedMs = seedLiveSessions(broker.file, template.id, size - 1);
    tenant.brokers = await broker.start();
    log(`${int(size)} live sessions: seeded in ${(seedMs / 1000).toFixed(1)} s`);
    return {
      size,
      broker,
      tenant,
      samples: { activation: [], refresh: [], end: [], resign: [], cached: [] },
    };
  } catch (err) {
    await broker.dispose();
    throw err;
  }
}

async function timed(work) {
  const t0 = performance.now();
  await work();
  return performance.now() - t0;
}

async function fetchList(url) {
  const response = await fetch(url);
  if (response.status !== 200) throw new Error(`status list ${url}: ${response.status}`);
  await response.text();
}

/** `count` sessions through their life; answers each op's latencies (ms). */
async function cycle(target, count) {
  const { tenant, broker } = target;
  const seen = { activation: [], refresh: [], end: [], resign: [], cached: [] };
  for (let i = 0; i < count; i++) {
    const request = await tenant.pipeline.call('POST', '/v1/requests', {
      privilege: 'bench',
      justification: 'scale benchmark',
      duration: 900,
    });
    const key = await generateSessionKey();
    let session;
    seen.activation.push(
      await timed(async () => {
        session = await BoundSession.activate(tenant.pipeline, request.id, key);
      }),
    );
    seen.refresh.push(await timed(() => session.refresh()));
    const uri = decodeJwt(session.tokens.accessToken).status.status_list.uri;
    const list = `${broker.url}${new URL(uri).pathname}`;
    seen.end.push(await timed(() => session.end('completed')));
    seen.resign.push(await timed(() => fetchList(list)));
    seen.cached.push(await timed(() => fetchList(list)));
  }
  return seen;
}

const p = (values, q) => percentile(values, q);
const spread = (ratios) => {
  const sorted = [...ratios].sort((a, b) => a - b);
  return { min: sorted[0], median: sorted[Math.floor(sorted.length / 2)], max: sorted.at(-1) };
};

export async function run({ log }) {
  const targets = [];
  try {
    for (const size of SIZES) targets.push(await prepare(size, log));
    for (const target of targets) await cycle(target, WARMUP);
    const perRep = [];
    for (let rep = 0; rep < REPETITIONS; rep++) {
      const round = new Map();
      // Interleaved: each size in turn, in an order that rotates with the repetition.
      for (let k = 0; k < targets.length; k++) {
        const target = targets[(k + rep) % targets.length];
        const seen = await cycle(target, OPS);
        round.set(target.size, seen);
        for (const [op, values] of Object.entries(seen)) target.samples[op].push(...values);
      }
      perRep.push(round);
      log(`repetition ${rep + 1}/${REPETITIONS} done`);
    }
    const beforeCost = targets.map((t) => [t.size, countCostMs(t.broker.file, t.tenant.brokers.tenant)]);
    return report(targets, perRep, beforeCost);
  } finally {
    await Promise.all(targets.map((t) => t.broker.dispose()));
  }
}

function report(targets, perRep, beforeCost) {
  const smallest = Math.min(...SIZES);
  const largest = Math.max(...SIZES);
  const rows = [];
  for (const t of targets) {
    for (const op of OPERATIONS)
      rows.push([
        `${int(t.size)} live: ${op} p50 / p99`,
        `${ms(p(t.samples[op], 50))} / ${ms(p(t.samples[op], 99))}`,
      ]);
    rows.push([
      `${int(t.size)} live: status list fetch, re-signed after a change / cached, p50`,
      `${ms(p(t.samples.resign, 50))} / ${ms(p(t.samples.cached, 50))}`,
    ]);
  }
  const verdicts = [];
  for (const op of OPERATIONS) {
    const ratio = (q) =>
      spread(perRep.map((round) => p(round.get(largest)[op], q) / p(round.get(smallest)[op], q)));
    const p50 = ratio(50);
    const p99 = ratio(99);
    rows.push([
      `${op}: ${int(largest)} ÷ ${int(smallest)} live, p50 ratio min / median / max (p99 ratio median)`,
      `${times(p50.min)} / ${times(p50.median)} / ${times(p50.max)} (${times(p99.median)})`,
    ]);
    verdicts.push({
      figure: `${op} p50, ${int(largest)} ÷ ${int(smallest)} live sessions (median of ${perRep.length})`,
      value: times(p50.median),
      target: `≤ ${TARGET}×`,
      met: p50.median <= TARGET,
    });
  }
  const cached = spread(
    perRep.map((round) => p(round.get(largest).cached, 50) / p(round.get(smallest).cached, 50)),
  );
  rows.push([
    `status list fetch (cached): ${int(largest)} ÷ ${int(smallest)} live, p50 ratio min / median / max`,
    `${times(cached.min)} / ${times(cached.median)} / ${times(cached.max)}`,
  ]);
  for (const [size, cost] of beforeCost)
    rows.push([
      `${int(size)} live: the removed per-activation count(*) over the fullest list, now`,
      ms(cost),
    ]);
  const notes = [
    `Each size: its own broker process on a durable SQLite file (WAL, synchronous=FULL); the live sessions seeded in bulk straight into the file with the broker stopped (copies of one session made over the API: request, session row, status-list slot at a random index, refresh token; lists filled to half as the allocator does), all of one pipeline principal; then the broker restarted on it. Seeding over the API would take ~10 ms a session.`,
    `${OPS} sessions per size per repetition, ${REPETITIONS} repetitions interleaved across the sizes, ${WARMUP} warm-up sessions per size; one client, one op at a time, latency at the client (its DPoP proof and the HTTP round trip included). A status list is fetched right after each end (its bit changed: re-signed) and again (cached).`,
    `"The removed count(*)" is what activation used to run on every call (countOccupiedSlots), timed on the same file with better-sqlite3 (served by the new (list_id, reusable_at) index, so cheaper than it was over the primary key).`,
  ];
  return { rows, verdicts, notes };
}
