// PEP catch-up at scale: a fleet of enforcement points starting together from position 0
// against a tenant whose log holds many ended sessions (a deployment rolling out, or every
// gateway restarting after an outage). Each must become fresh within its staleness budget, the
// broker's memory must stay bounded, and each must then judge real sessions right: the ones
// ended long before (judged by the snapshot's status lists), one ended just before the fleet
// started (listed by id), a live one (allowed) and one ended after (refused by its event).
import { setPriority } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Child } from '../bench/lib/processes.mjs';
import { percentile } from '../bench/lib/stats.mjs';
import { FaultBroker, processCpuSeconds, tenantWithPep } from './lib/fault-broker.mjs';
import { seedEndedSessions } from './lib/seed-ended.mjs';

const AUDIENCE = 'https://fleet.example';
const FLEET_SCRIPT = new URL('./lib/pep-fleet.mjs', import.meta.url);
/** Ends older than this are judged by the snapshot's status lists, not listed by id (2 × its skew). */
const LIST_JUDGED_AFTER_MS = 21_000;

/** What a worker needs of a session to sign proofs for it (BenchTenant.session() minus live objects). */
const portable = (s) => ({ id: s.id, privateJwk: s.privateJwk, token: s.token });

/**
 * @param {{ peps: number, endedSessions: number, workers?: number, budgetMs?: number, listJudged?: boolean }} options
 *   `listJudged: false` (the smoke) skips the wait that makes the first real end old enough to
 *   be judged by the status lists alone (then it is listed by id, like the other).
 */
export async function catchUpTrial({
  peps,
  endedSessions,
  workers = 4,
  budgetMs = 10_000,
  listJudged = true,
}) {
  const started = Date.now();
  const broker = await FaultBroker.create({ dialect: 'sqlite' });
  const fleet = [];
  try {
    const { tenant, pep } = await tenantWithPep(broker, AUDIENCE, 'fleet-pep');

    // Real sessions, ended through the API: the template of the seeded ones, and the ones checked.
    const endedLongAgo = await tenant.session();
    await tenant.end(endedLongAgo.id);
    const endedAt = Date.now();
    await broker.stop();
    const seedStarted = Date.now();
    const head = seedEndedSessions(broker.location, {
      templateSessionId: endedLongAgo.id,
      count: endedSessions - 1,
      endedFrom: Date.now() - 3_600_000,
      endedTo: Date.now() - 60_000,
      hardExpiresAt: Date.now() + 3_600_000,
    });
    const seedSeconds = (Date.now() - seedStarted) / 1000;
    await broker.restart();
    const live = await tenant.session();
    const endedLater = await tenant.session();
    if (listJudged) await sleep(Math.max(0, endedAt + LIST_JUDGED_AFTER_MS - Date.now()));
    const endedJustBefore = await tenant.session();
    await tenant.end(endedJustBefore.id);

    // The fleet: `workers` processes, `peps` enforcers in all, created first, started together.
    const per = Math.ceil(peps / workers);
    for (let w = 0; w < workers; w++) {
      const count = Math.min(per, peps - w * per);
      if (count <= 0) break;
      const child = new Child(FLEET_SCRIPT, `pep fleet ${w}`);
      // A thousand PEPs would run on a thousand hosts; here they share the broker's cores. At a
      // lower priority they take what the broker leaves, rather than the broker's own share.
      setPriority(child.pid, 10);
      fleet.push(child);
      child.send({
        type: 'create',
        count,
        broker: broker.publicUrl,
        tenant: broker.tenant,
        audience: AUDIENCE,
        identity: { principal: pep.principal, key: pep.key },
        budgetMs,
      });
    }
    await Promise.all(fleet.map((c) => c.expect('created', { timeoutMs: 60_000 })));

    const cpu = () => ({
      broker: broker.cpuSeconds(),
      fleet: fleet.reduce((n, c) => n + processCpuSeconds(c.pid), 0),
    });
    const cpuBefore = cpu();
    const startedAt = performance.now();
    const rss = [broker.rssMiB()];
    const sampler = setInterval(() => rss.push(broker.rssMiB()), 100);
    const timeoutMs = Math.max(60_000, 3 * budgetMs);
    for (const child of fleet) child.send({ type: 'start', timeoutMs });
    const starts = await Promise.all(
      fleet.map((c) => c.expect('started', { timeoutMs: timeoutMs + 30_000 })),
    );
    clearInterval(sampler);
    rss.push(broker.rssMiB());
    const cpuAfter = cpu();
    const startSeconds = (performance.now() - startedAt) / 1000;
    const freshAfter = starts.flatMap((s) => s.freshAfter);
    const phase = (key) => {
      const xs = starts.flatMap((s) => s[key]).filter((ms) => ms !== null);
      return `${Math.round(percentile(xs, 50))} / ${Math.round(Math.max(0, ...xs))}`;
    };
    const warnings = {};
    for (const s of starts)
      for (const [k, n] of Object.entries(s.warnings)) warnings[k] = (warnings[k] ?? 0) + n;
    const neverFresh = freshAfter.filter((ms) => ms === null).length;
    const freshMs = freshAfter.filter((ms) => ms !== null);

    // Every PEP judges the real sessions.
    const sessions = [
      { label: 'ended long before (status list)', expect: 'refuse', session: portable(endedLongAgo) },
      { label: 'ended just before (by id)', expect: 'refuse', session: portable(endedJustBefore) },
      { label: 'live', expect: 'allow', session: portable(live) },
      { label: 'ended later (event)', expect: 'allow', session: portable(endedLater) },
    ];
    for (const child of fleet) child.send({ type: 'check', sessions });
    const checks = await Promise.all(fleet.map((c) => c.expect('checked', { timeoutMs: 120_000 })));
    const wrong = checks.flatMap((c) => c.wrong);
    let wrongDecisions = checks.reduce((n, c) => n + c.wrongCount, 0);

    // One more end, after the fleet is fresh: every PEP must refuse it, by its event.
    await tenant.end(endedLater.id);
    for (const child of fleet)
      child.send({ type: 'refuses', session: portable(endedLater), timeoutMs: budgetMs * 2 });
    const refusals = await Promise.all(
      fleet.map((c) => c.expect('refused', { timeoutMs: budgetMs * 2 + 60_000 })),
    );
    const refusedAfter = refusals.flatMap((r) => r.after);
    const missed = refusedAfter.filter((ms) => ms === null).length;
    wrongDecisions += missed;

    const late = freshMs.filter((ms) => ms > budgetMs).length;
    return {
      name: 'PEP fleet catch-up from 0',
      peps,
      endedSessions,
      head,
      seedSeconds: Math.round(seedSeconds * 10) / 10,
      budgetMs,
      connectedP50MaxMs: phase('connectedAfter'),
      caughtUpP50MaxMs: phase('caughtUpAfter'),
      freshP50Ms: Math.round(percentile(freshMs, 50)),
      freshMaxMs: Math.round(Math.max(0, ...freshMs)),
      neverFresh,
      lateFresh: late,
      wrongDecisions,
      wrong,
      warnings,
      endRefusedMaxMs: Math.round(Math.max(0, ...refusedAfter.filter((ms) => ms !== null))),
      // Of the two cores, how much each side used while the fleet started: on their own hosts the
      // PEPs' share would not be taken from the broker.
      cpuDuringStart: `broker ${(cpuAfter.broker - cpuBefore.broker).toFixed(1)} s, PEPs ${(cpuAfter.fleet - cpuBefore.fleet).toFixed(1)} s, in ${startSeconds.toFixed(1)} s`,
      brokerRssMaxMiB: Math.round(Math.max(...rss.filter(Number.isFinite))),
      fleetHeapMiB: Math.round(starts.reduce((n, s) => n + s.heapMiB, 0)),
      losses: neverFresh + late + wrongDecisions,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
  } finally {
    await Promise.all(fleet.map((c) => c.stop().catch(() => undefined)));
    await broker.destroy();
  }
}

// `node faults/catch-up-trial.mjs [peps] [endedSessions]`: one run, printed.
if (import.meta.url === `file://${process.argv[1]}`) {
  const [peps = '1000', ended = '100000', workers = '4'] = process.argv.slice(2);
  console.log(
    await catchUpTrial({ peps: Number(peps), endedSessions: Number(ended), workers: Number(workers) }),
  );
}
