// P3: revocation propagation. 200 enforcement points (createEnforcer, each its own PEP
// principal and SSE connection) spread over 4 processes follow one broker; a session is ended
// over HTTP (POST /v1/sessions/:id/end) and we time, from the moment that call returns, until
// every PEP refuses a request of that session carrying a fresh proof. p50/p99 over ≥ 200
// revocations; target p99 ≤ 50 ms. Then the same with two broker replicas on PostgreSQL, the
// sessions ended through replica A and the PEPs split over A and B; target p99 ≤ 100 ms.
import { existsSync } from 'node:fs';
import { createDpopProof } from '../packages/client/dist/index.js';
import { BenchTenant, postgresProblem, REQUIREMENT, startBrokers } from './lib/broker.mjs';
import { Child, wallNow } from './lib/processes.mjs';
import { int, ms, percentile } from './lib/stats.mjs';

const PEPS = Number(process.env.TETHER_BENCH_P3_PEPS ?? 200);
const PROCESSES = Number(process.env.TETHER_BENCH_P3_PROCESSES ?? 4);
const ROUNDS = Number(process.env.TETHER_BENCH_P3_ROUNDS ?? 200);
const WARM_ROUNDS = 5;

export const title = `Revocation propagation: end call returned → every PEP refuses (${PEPS} PEPs, ${PROCESSES} processes)`;
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

/** Creates the PEP principals over the API, a few at a time. */
async function pepIdentities(tenant) {
  const identities = [];
  for (let i = 0; i < PEPS; i += 10) {
    const batch = [];
    for (let k = i; k < Math.min(PEPS, i + 10); k++)
      batch.push(tenant.principal(`pep-${k}`, 'service', ['pep']));
    identities.push(...(await Promise.all(batch)));
  }
  return identities;
}

/** One revocation: a fresh session, allowed everywhere, ended; answers the latencies seen. */
async function revocation(tenant, hosts, r) {
  const s = await tenant.session();
  const proof = () =>
    createDpopProof(s.key, { method: 'GET', url: `${AUDIENCE}${PATH}`, accessToken: s.token });
  const arm = { type: 'arm', round: r, token: s.token, warm: await proof(), check: await proof() };
  for (const host of hosts) host.send(arm);
  const armed = await Promise.all(hosts.map((h) => h.expect('armed', { accept: (m) => m.round === r })));
  const allowed = armed.reduce((n, a) => n + a.allowed, 0);
  // A PEP that refused the live session (e.g. stale) proves nothing about the end: the round is failed.
  const armFailures =
    allowed === PEPS
      ? []
      : [`only ${allowed} of ${PEPS} PEPs allowed the live session: ${armed.flatMap((a) => a.refusals)[0]}`];
  const before = wallNow();
  await tenant.end(s.id);
  const returned = wallNow();
  const reports = await Promise.all(hosts.map((h) => report(h, r)));
  const denied = reports.flatMap((m) => m.denied);
  const applied = reports.flatMap((m) => m.applied);
  const onB = reports.flatMap((m) => m.denied.filter((_, i) => m.replicas[i] === 1));
  return {
    complete: armFailures.length === 0 && denied.length === PEPS,
    failures: [...armFailures, ...reports.flatMap((m) => m.failures)],
    endCall: returned - before,
    denied: Math.max(...denied) - returned,
    applied: Math.max(...applied) - returned,
    deniedB: onB.length > 0 ? Math.max(...onB) - returned : Number.NaN,
  };
}

async function scenario({ replicas, postgres, log }) {
  const brokers = await startBrokers({ replicas, postgres });
  const hosts = [];
  try {
    const tenant = new BenchTenant(brokers);
    await tenant.grant(AUDIENCE);
    const identities = await pepIdentities(tenant);
    for (let h = 0; h < PROCESSES; h++) {
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
    log(`${PEPS} PEPs fresh in ${PROCESSES} processes on ${replicas} ${brokers.dialect} broker process(es)`);

    const rounds = [];
    for (let r = 0; r < WARM_ROUNDS + ROUNDS; r++) {
      const result = await revocation(tenant, hosts, r);
      if (r >= WARM_ROUNDS) rounds.push(result);
      await new Promise((resolve) => setTimeout(resolve, GAP_MS));
      if (rounds.length > 0 && rounds.length % 50 === 0 && r >= WARM_ROUNDS)
        log(`${rounds.length} revocations measured`);
    }
    return rounds;
  } finally {
    await Promise.all(hosts.map((h) => h.stop(10_000)));
    await brokers.stop();
  }
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
  const single = figures(
    '1 broker, SQLite',
    await scenario({ replicas: 1, postgres: false, log }),
    50,
    false,
  );
  const rows = [...single.rows];
  const verdicts = [single.verdict];
  const notes = [...single.notes];
  const pgProblem = existsSync(PG_NOTIFY)
    ? await postgresProblem()
    : 'the broker has no PostgreSQL replica support (revocation/pg-notify) yet';
  if (pgProblem) {
    verdicts.push({
      figure: '2 replicas, PostgreSQL: p99 end → every PEP refuses',
      value: '—',
      target: '≤ 100 ms',
    });
    notes.push(`2 replicas on PostgreSQL: not run — ${pgProblem}.`);
  } else {
    try {
      const two = figures(
        '2 replicas, PostgreSQL',
        await scenario({ replicas: 2, postgres: true, log }),
        100,
        true,
      );
      rows.push(...two.rows);
      verdicts.push(two.verdict);
      notes.push(...two.notes);
    } catch (err) {
      log(err.stack ?? err.message);
      verdicts.push({
        figure: '2 replicas, PostgreSQL: p99 end → every PEP refuses',
        value: 'failed',
        target: '≤ 100 ms',
        met: false,
      });
      notes.push(`2 replicas on PostgreSQL: failed — ${err.message.split('\n')[0]}`);
    }
  }
  notes.push(
    `Each revocation: a new session (auto-approved pipeline request), allowed by all ${int(PEPS)} PEPs with one proof; ended over HTTP by its holder (through replica A); each PEP, on applying the next event (onApplied), decides a request with a second, fresh proof of the same token: the time it is refused (401 invalid_token, session ended) counts. Latency of a revocation = the last PEP's refusal − the end call's return (timestamps performance.timeOrigin + now(), comparable across processes). ${WARM_ROUNDS} warm-up revocations not counted.`,
    `PEPs: createEnforcer with default budget and reconnect, decision reporting off, each acking what it applied (POST /v1/peps/:id/ack) as in production; ${PROCESSES} processes of ${Math.ceil(PEPS / PROCESSES)}, brokers in their own processes, all on this machine's cores.`,
  );
  return { rows, verdicts, notes };
}
