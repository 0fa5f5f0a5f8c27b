// P3: revocation propagation. N enforcement points (createEnforcer, each its own PEP principal
// and SSE connection) spread over 4 processes follow one broker; a session is ended over HTTP
// (POST /v1/sessions/:id/end) and we time, from the moment that call returns, until every PEP
// refuses a request of that session carrying a fresh proof. p50/p99 over ≥ 200 revocations,
// one at a time (a round starts once the last one's reports are in, and a gap has passed), with
// 20 PEPs (target p99 ≤ 50 ms) and 200 (≤ 100 ms), and how it grows per PEP. The broker's
// fan-out alone, from outside: 200 raw streams that only note when the event arrives (target:
// the last has it ≤ 10 ms after the end call returned, p99). Then two broker replicas on
// PostgreSQL, the sessions ended through replica A and the PEPs split over A and B (≤ 150 ms).
import { existsSync } from 'node:fs';
import { createDpopProof } from '../packages/client/dist/index.js';
import { BenchTenant, postgresProblem, REQUIREMENT, startBrokers } from './lib/broker.mjs';
import { Child, wallNow } from './lib/processes.mjs';
import { ms, percentile } from './lib/stats.mjs';

/** PEP counts measured on one SQLite broker (a list): the targets are for 20 and 200. */
const PEP_COUNTS = (process.env.TETHER_BENCH_P3_PEPS ?? '20,200').split(',').map(Number);
const MOST_PEPS = Math.max(...PEP_COUNTS);
/** PEPs in the PostgreSQL replica run. */
const PG_PEPS = Number(process.env.TETHER_BENCH_P3_PG_PEPS ?? MOST_PEPS);
/** Raw streams of the fan-out measure (0: not run). */
const STREAMS = Number(process.env.TETHER_BENCH_P3_STREAMS ?? 200);
const PROCESSES = Number(process.env.TETHER_BENCH_P3_PROCESSES ?? 4);
const ROUNDS = Number(process.env.TETHER_BENCH_P3_ROUNDS ?? 200);
const WARM_ROUNDS = 5;
/** Targets by PEP count (p99, ms), from issue 16. */
const TARGETS = { 20: 50, 200: 100 };
const PG_TARGET = 150;
const FANOUT_TARGET = 10;

export const title = `Revocation propagation: end call returned → every PEP refuses (${PEP_COUNTS.join(' and ')} PEPs, ${PROCESSES} processes; fan-out to ${STREAMS} streams)`;
/** A round whose PEPs have not all reported after this long is counted as failed. */
const ROUND_TIMEOUT_MS = 5000;
/**
 * A pause between revocations: each one makes every PEP ack (POST /v1/peps/:id/ack), and the
 * next one is measured on a broker that has handled those, as isolated revocations would be.
 */
const GAP_MS = Number(process.env.TETHER_BENCH_P3_GAP_MS ?? 50);
const AUDIENCE = 'https://p3.bench.example';
const PATH = '/status';
const HOST = new URL('./lib/p3-pep-host.mjs', import.meta.url);
const TAP = new URL('./lib/p3-stream-tap.mjs', import.meta.url);
const PG_NOTIFY = new URL('../packages/broker/dist/revocation/pg-notify.js', import.meta.url);

/** The report of one host for round `r`; after the timeout, asks it for what it has. */
async function report(host, r) {
  try {
    return await host.expect('enforced', { accept: (m) => m.round === r, timeoutMs: ROUND_TIMEOUT_MS });
  } catch (err) {
    if (!/no 'enforced'/.test(err.message)) throw err;
    host.send({ type: 'flush', round: r });
    return host.expect('enforced', { accept: (m) => m.round === r, timeoutMs: ROUND_TIMEOUT_MS });
  }
}

/** Creates `count` PEP principals over the API, a few at a time. */
async function pepIdentities(tenant, count) {
  const identities = [];
  for (let i = 0; i < count; i += 10) {
    const batch = [];
    for (let k = i; k < Math.min(count, i + 10); k++)
      batch.push(tenant.principal(`pep-${k}`, 'service', ['pep']));
    identities.push(...(await Promise.all(batch)));
  }
  return identities;
}

/** One revocation: a fresh session, allowed everywhere, ended; answers the latencies seen. */
async function revocation(tenant, hosts, r, peps) {
  const s = await tenant.session();
  const proof = () =>
    createDpopProof(s.key, { method: 'GET', url: `${AUDIENCE}${PATH}`, accessToken: s.token });
  const arm = { type: 'arm', round: r, token: s.token, warm: await proof(), check: await proof() };
  for (const host of hosts) host.send(arm);
  const armed = await Promise.all(hosts.map((h) => h.expect('armed', { accept: (m) => m.round === r })));
  const allowed = armed.reduce((n, a) => n + a.allowed, 0);
  // A PEP that refused the live session (e.g. stale) proves nothing about the end: the round is failed.
  const armFailures =
    allowed === peps
      ? []
      : [`only ${allowed} of ${peps} PEPs allowed the live session: ${armed.flatMap((a) => a.refusals)[0]}`];
  const before = wallNow();
  await tenant.end(s.id);
  const returned = wallNow();
  const reports = await Promise.all(hosts.map((h) => report(h, r)));
  const denied = reports.flatMap((m) => m.denied);
  const applied = reports.flatMap((m) => m.applied);
  const onB = reports.flatMap((m) => m.denied.filter((_, i) => m.replicas[i] === 1));
  return {
    complete: armFailures.length === 0 && denied.length === peps,
    failures: [...armFailures, ...reports.flatMap((m) => m.failures)],
    endCall: returned - before,
    denied: Math.max(...denied) - returned,
    applied: Math.max(...applied) - returned,
    deniedB: onB.length > 0 ? Math.max(...onB) - returned : Number.NaN,
  };
}

/** The acks the brokers have recorded (each PEP's ack of an end: `tether_revocation_latency_seconds_count`). */
async function ackCount(urls) {
  let total = 0;
  for (const url of urls) {
    const text = await (await fetch(`${url}/metrics`)).text();
    total += Number(/^tether_revocation_latency_seconds_count (\d+)/m.exec(text)?.[1] ?? 0);
  }
  return total;
}

/**
 * Waits until the brokers have recorded `expected` acks (a PEP acks ~100 ms after applying an
 * event): the next revocation is then measured on a broker that is done with this one's acks.
 * Answers whether they all came within `timeoutMs`.
 */
async function acksSettled(urls, expected, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while ((await ackCount(urls)) < expected) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

/** Revocations one after the other, never overlapping: `measure(r)` answers once round r is over. */
async function rounds(measure, log) {
  const measured = [];
  for (let r = 0; r < WARM_ROUNDS + ROUNDS; r++) {
    const result = await measure(r);
    if (r >= WARM_ROUNDS) measured.push(result);
    await new Promise((resolve) => setTimeout(resolve, GAP_MS));
    if (r >= WARM_ROUNDS && measured.length % 50 === 0) log(`${measured.length} revocations measured`);
  }
  return measured;
}

async function scenario({ replicas, postgres, peps: PEPS, log }) {
  const brokers = await startBrokers({ replicas, postgres });
  const hosts = [];
  try {
    const tenant = new BenchTenant(brokers);
    await tenant.grant(AUDIENCE);
    const identities = await pepIdentities(tenant, PEPS);
    for (let h = 0; h < Math.min(PROCESSES, PEPS); h++) {
      const host = new Child(HOST, `P3 PEP host ${h}`);
      hosts.push(host);
      const peps = [];
      for (let k = h; k < PEPS; k += PROCESSES) {
        // Alternate replicas PEP by PEP, so every process holds PEPs of every replica.
        const replica = Math.floor(k / PROCESSES) % replicas;
        peps.push({
          broker: brokers.urls[replica],
          replica,
          identity: { principal: identities[k].principal, key: identities[k].key },
        });
      }
      host.send({
        type: 'start',
        peps,
        issuer: brokers.publicUrl,
        tenant: brokers.tenant,
        audience: AUDIENCE,
        requirement: REQUIREMENT,
      });
    }
    await Promise.all(hosts.map((h) => h.expect('started', { timeoutMs: 120_000 })));
    log(
      `${PEPS} PEPs fresh in ${hosts.length} processes on ${replicas} ${brokers.dialect} broker process(es)`,
    );
    const base = await ackCount(brokers.urls);
    return await rounds(async (r) => {
      const result = await revocation(tenant, hosts, r, PEPS);
      result.acksSettled = await acksSettled(brokers.urls, base + (r + 1) * PEPS);
      return result;
    }, log);
  } finally {
    await Promise.all(hosts.map((h) => h.stop(10_000)));
    await brokers.stop();
  }
}

/**
 * The broker's fan-out seen from outside: `STREAMS` raw streams in one process; per revocation,
 * the end call's return → the last stream has the event, and the first → the last arrival.
 */
async function fanout(log) {
  const brokers = await startBrokers({});
  const tap = new Child(TAP, 'P3 stream tap');
  try {
    const tenant = new BenchTenant(brokers);
    await tenant.grant(AUDIENCE);
    const identities = await pepIdentities(tenant, STREAMS);
    tap.send({ type: 'start', identities });
    await tap.expect('started', { timeoutMs: 120_000 });
    log(`${STREAMS} raw revocation streams open on 1 ${brokers.dialect} broker process`);
    return await rounds(async (r) => {
      const s = await tenant.session();
      const before = wallNow();
      await tenant.end(s.id);
      const returned = wallNow();
      tap.send({ type: 'await', round: r, timeoutMs: ROUND_TIMEOUT_MS });
      const got = await tap.expect('arrived', {
        accept: (m) => m.round === r,
        timeoutMs: ROUND_TIMEOUT_MS + 5000,
      });
      return got.failed
        ? { complete: false, endCall: returned - before }
        : {
            complete: true,
            endCall: returned - before,
            last: got.last - returned,
            spread: got.last - got.first,
          };
    }, log);
  } finally {
    await tap.stop(10_000);
    await brokers.stop();
  }
}

function fanoutFigures(measured) {
  const failed = measured.filter((r) => !r.complete).length;
  const last = measured.map((r) => (r.complete ? r.last : Number.POSITIVE_INFINITY));
  const spread = measured.map((r) => (r.complete ? r.spread : Number.POSITIVE_INFINITY));
  const label = `fan-out to ${STREAMS} raw streams, 1 broker, SQLite`;
  const p99 = percentile(last, 99);
  return {
    rows: [
      [
        `${label}: end call returned → last stream has the event, p50 / p99 / max`,
        `${ms(percentile(last, 50))} / ${ms(p99)} / ${ms(Math.max(...last))}`,
      ],
      [
        `${label}: first → last stream has it, p50 / p99`,
        `${ms(percentile(spread, 50))} / ${ms(percentile(spread, 99))}`,
      ],
      [`${label}: revocations measured / incomplete`, `${measured.length} / ${failed}`],
    ],
    verdict: {
      figure: `${label}: p99 end call returned → last stream has the event`,
      value: ms(p99),
      target: `≤ ${FANOUT_TARGET} ms`,
      met: p99 <= FANOUT_TARGET,
    },
  };
}

/** How the p50 and p99 grow from the fewest PEPs to the most: ms per added PEP. */
function growth(byCount) {
  const counts = [...byCount.keys()].sort((a, b) => a - b);
  if (counts.length < 2) return [];
  const [lo, hi] = [counts[0], counts.at(-1)];
  const q = (count, p) =>
    percentile(
      byCount.get(count).map((r) => (r.complete ? r.denied : Number.POSITIVE_INFINITY)),
      p,
    );
  const slope = (p) => (q(hi, p) - q(lo, p)) / (hi - lo);
  return [
    [
      `growth with PEPs (${lo} → ${hi}), 1 broker, SQLite: ms per added PEP, p50 / p99`,
      `${slope(50).toFixed(3)} / ${slope(99).toFixed(3)}`,
    ],
  ];
}

function figures(label, rounds, target, withB) {
  const incomplete = rounds.filter((r) => !r.complete);
  const denied = rounds.map((r) => (r.complete ? r.denied : Number.POSITIVE_INFINITY));
  const p99 = percentile(denied, 99);
  const rows = [
    [
      `${label}: end call returned → every PEP refuses, p50 / p99 / max`,
      `${ms(percentile(denied, 50))} / ${ms(p99)} / ${ms(Math.max(...denied))}`,
    ],
    [
      `${label}: end call returned → every PEP has applied the event, p50 / p99`,
      `${ms(
        percentile(
          rounds.map((r) => r.applied),
          50,
        ),
      )} / ${ms(
        percentile(
          rounds.map((r) => r.applied),
          99,
        ),
      )}`,
    ],
    [
      `${label}: end call duration, p50 / p99`,
      `${ms(
        percentile(
          rounds.map((r) => r.endCall),
          50,
        ),
      )} / ${ms(
        percentile(
          rounds.map((r) => r.endCall),
          99,
        ),
      )}`,
    ],
    [`${label}: revocations measured / incomplete`, `${rounds.length} / ${incomplete.length}`],
    [
      `${label}: revocations whose PEP acks were not all in within 3 s (next round started anyway)`,
      String(rounds.filter((r) => !r.acksSettled).length),
    ],
  ];
  if (withB) {
    const b = rounds.map((r) => (r.complete ? r.deniedB : Number.POSITIVE_INFINITY));
    rows.splice(1, 0, [
      `${label}: … PEPs on replica B only, p50 / p99`,
      `${ms(percentile(b, 50))} / ${ms(percentile(b, 99))}`,
    ]);
  }
  const notes = incomplete.length
    ? [
        `${label}: ${incomplete.length} revocations not enforced by every PEP within ${ROUND_TIMEOUT_MS} ms, e.g. ${incomplete[0].failures.slice(0, 2).join('; ')}`,
      ]
    : [];
  return {
    rows,
    verdict: {
      figure: `${label}: p99 end → every PEP refuses`,
      value: ms(p99),
      target: `≤ ${target} ms`,
      met: p99 <= target,
    },
    notes,
  };
}

export async function run({ log }) {
  const rows = [];
  const verdicts = [];
  const notes = [];
  const byCount = new Map();
  for (const peps of PEP_COUNTS) {
    const measured = await scenario({ replicas: 1, postgres: false, peps, log });
    byCount.set(peps, measured);
    const single = figures(`${peps} PEPs, 1 broker, SQLite`, measured, TARGETS[peps] ?? 100, false);
    rows.push(...single.rows);
    verdicts.push(single.verdict);
    notes.push(...single.notes);
  }
  rows.push(...growth(byCount));
  if (STREAMS > 0) {
    const fan = fanoutFigures(await fanout(log));
    rows.push(...fan.rows);
    verdicts.push(fan.verdict);
  }
  const pgLabel = `${PG_PEPS} PEPs, 2 replicas, PostgreSQL`;
  const pgProblem = existsSync(PG_NOTIFY)
    ? await postgresProblem()
    : 'the broker has no PostgreSQL replica support (revocation/pg-notify) yet';
  if (pgProblem) {
    verdicts.push({
      figure: `${pgLabel}: p99 end → every PEP refuses`,
      value: '—',
      target: `≤ ${PG_TARGET} ms`,
    });
    notes.push(`2 replicas on PostgreSQL: not run — ${pgProblem}.`);
  } else {
    try {
      const two = figures(
        pgLabel,
        await scenario({ replicas: 2, postgres: true, peps: PG_PEPS, log }),
        PG_TARGET,
        true,
      );
      rows.push(...two.rows);
      verdicts.push(two.verdict);
      notes.push(...two.notes);
    } catch (err) {
      log(err.stack ?? err.message);
      verdicts.push({
        figure: `${pgLabel}: p99 end → every PEP refuses`,
        value: 'failed',
        target: `≤ ${PG_TARGET} ms`,
        met: false,
      });
      notes.push(`2 replicas on PostgreSQL: failed — ${err.message.split('\n')[0]}`);
    }
  }
  notes.push(
    `Each revocation: a new session (auto-approved pipeline request), allowed by every PEP with one proof; ended over HTTP by its holder (through replica A); each PEP, on applying the next event (onApplied), decides a request with a second, fresh proof of the same token: the time it is refused (401 invalid_token, session ended) counts. Latency of a revocation = the last PEP's refusal − the end call's return (timestamps performance.timeOrigin + now(), comparable across processes). ${ROUNDS} revocations per run, one at a time (the next starts once every PEP has reported, the brokers have recorded every PEP's ack of it (their /metrics), and ${GAP_MS} ms have passed); ${WARM_ROUNDS} warm-up revocations not counted; p99 is nearest-rank over all of them.`,
    `PEPs: createEnforcer with default budget and reconnect, decision reporting off, each acking what it applied (POST /v1/peps/:id/ack) as in production; ${PROCESSES} processes, brokers in their own processes, all on this machine's cores.`,
    `Fan-out: ${STREAMS} raw GET /v1/events streams in one process, each with its own PEP principal and DPoP-bound token, noting each revocation message's arrival without verifying it; the broker signs each event once and writes the same bytes to every stream.`,
  );
  return { rows, verdicts, notes };
}
