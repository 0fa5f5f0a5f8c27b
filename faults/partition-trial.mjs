// A PEP partitioned from its broker (a pausable TCP proxy between them): while cut off, a
// session is ended at the broker. The PEP must never allow that session once its staleness
// budget has passed since the end (it cannot know of the end, so it must fail closed), and once
// the partition heals it must refuse the session as ended: nothing missed.
import { setTimeout as sleep } from 'node:timers/promises';
import { percentile } from '../bench/lib/stats.mjs';
import { createEnforcer } from '../packages/pep/dist/index.js';
import { decide as decideFor } from './lib/decide.mjs';
import { FaultBroker, tenantWithPep } from './lib/fault-broker.mjs';
import { TcpProxy } from './lib/tcp-proxy.mjs';

const AUDIENCE = 'https://partitioned.example';
const decide = (enforcer, session) => decideFor(enforcer, AUDIENCE, session);

/** Polls `decide` until `until(decision)` or `withinMs` passes; answers the last decision and when. */
async function pollUntil(enforcer, session, until, withinMs, onEach = () => undefined) {
  const deadline = Date.now() + withinMs;
  let last;
  while (Date.now() < deadline) {
    last = await decide(enforcer, session);
    onEach(last, Date.now());
    if (until(last)) return { decision: last, at: Date.now() };
    await sleep(20);
  }
  return { decision: last, at: undefined };
}

/**
 * @param {{ rounds: number, budgetMs?: number, partitionMs?: [number, number] }} options
 */
export async function partitionTrial({ rounds, budgetMs = 1000, partitionMs = [300, 2500] }) {
  const started = Date.now();
  const broker = await FaultBroker.create({ dialect: 'sqlite', heartbeatIntervalMs: 200 });
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: Number(new URL(broker.publicUrl).port) });
  let enforcer;
  try {
    const { tenant, pep } = await tenantWithPep(broker, AUDIENCE, 'partitioned-pep');
    enforcer = createEnforcer({
      broker: `http://127.0.0.1:${proxy.port}`,
      issuer: broker.publicUrl,
      audience: AUDIENCE,
      tenant: broker.tenant,
      publicBaseUrl: AUDIENCE,
      identity: { principal: pep.principal, key: pep.key },
      stalenessBudgetMs: budgetMs,
      decisions: false,
      reconnect: { minDelayMs: 50, maxDelayMs: 400 },
      ...(process.env.TETHER_FAULTS_DEBUG
        ? { log: { warn: console.warn, info: console.log, error: console.error, debug: () => {} } }
        : {}),
    });
    enforcer.start();
    let lateAllows = 0;
    let missed = 0;
    let roundsDone = 0;
    const healLatencies = [];
    const between = ([lo, hi]) => lo + Math.random() * (hi - lo);
    for (let round = 0; round < rounds; round++) {
      const session = await tenant.session();
      // Fresh and allowing before the fault.
      const before = await pollUntil(enforcer, session, (d) => d.allow, 15_000);
      if (!before.at) throw new Error(`the PEP never allowed a live session: ${before.decision?.code}`);
      proxy.pause();
      await sleep(between([0, 200]));
      await tenant.end(session.id);
      const endedAt = Date.now();
      const healAt = endedAt + between(partitionMs);
      // While cut off: allowed at most until the budget has passed since the end.
      await pollUntil(
        enforcer,
        session,
        () => Date.now() >= healAt,
        healAt - Date.now() + 1000,
        (d, at) => {
          if (d.allow && at > endedAt + budgetMs) lateAllows++;
        },
      );
      proxy.resume();
      // Half the time the connections are also reset, as a flapping link does.
      if (Math.random() < 0.5) proxy.cut();
      const resumedAt = Date.now();
      const healed = await pollUntil(
        enforcer,
        session,
        (d) => d.status === 401,
        15_000,
        (d, at) => {
          // Within the budget since the end the PEP may not know of it yet: allowed. Past it, a miss.
          if (d.allow && at > endedAt + budgetMs) missed++;
        },
      );
      if (healed.at === undefined) missed++;
      else healLatencies.push(healed.at - resumedAt);
      roundsDone++;
    }
    healLatencies.sort((a, b) => a - b);
    return {
      name: 'PEP partitioned from the broker',
      store: 'sqlite',
      rounds: roundsDone,
      budgetMs,
      lateAllows,
      missed,
      losses: lateAllows + missed,
      healP50Ms: percentile(healLatencies, 50),
      healMaxMs: healLatencies.at(-1),
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
  } finally {
    await enforcer?.close?.();
    await proxy.close();
    await broker.destroy();
  }
}
