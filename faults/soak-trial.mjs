// The soak: many live sessions, a steady stream of revocations for a while, a PEP following
// the broker. For each revocation, the time from the end to the PEP refusing the session; the
// broker's resident memory and the PEP's heap are sampled throughout: they must stay flat.
import { setTimeout as sleep } from 'node:timers/promises';
import { percentile } from '../bench/lib/stats.mjs';
import { createEnforcer } from '../packages/pep/dist/index.js';
import { decide as decideFor } from './lib/decide.mjs';
import { FaultBroker, tenantWithPep } from './lib/fault-broker.mjs';

const AUDIENCE = 'https://soaked.example';
const decide = (enforcer, session) => decideFor(enforcer, AUDIENCE, session);

/** Mean of the first and of the last third of `samples`, and their ratio. */
function drift(samples) {
  const third = Math.max(1, Math.floor(samples.length / 3));
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(samples.slice(0, third));
  const last = mean(samples.slice(-third));
  return { first, last, max: Math.max(...samples), ratio: last / first };
}

/**
 * @param {{ sessions: number, durationMs: number, revokeEveryMs?: number, sampleEveryMs?: number }} options
 */
export async function soakTrial({ sessions, durationMs, revokeEveryMs = 250, sampleEveryMs = 2000 }) {
  const started = Date.now();
  const broker = await FaultBroker.create({ dialect: 'sqlite', heartbeatIntervalMs: 500 });
  let enforcer;
  try {
    const { tenant, pep } = await tenantWithPep(broker, AUDIENCE, 'soaked-pep');
    // The live sessions, four at a time.
    const live = [];
    const makers = Array.from({ length: 4 }, async () => {
      while (live.length < sessions) live.push(await tenant.session());
    });
    await Promise.all(makers);
    enforcer = createEnforcer({
      broker: broker.publicUrl,
      audience: AUDIENCE,
      tenant: broker.tenant,
      publicBaseUrl: AUDIENCE,
      identity: { principal: pep.principal, key: pep.key },
      decisions: false,
    });
    enforcer.start();
    while (!enforcer.state().fresh) await sleep(50);

    const brokerRss = [];
    const pepHeap = [];
    const sample = () => {
      brokerRss.push(broker.rssMiB());
      pepHeap.push(process.memoryUsage().heapUsed / 2 ** 20);
    };
    sample();
    let nextSample = Date.now() + sampleEveryMs;
    const latencies = [];
    let lost = 0;
    let revocations = 0;
    const until = Date.now() + durationMs;
    while (Date.now() < until && live.length > 0) {
      const tick = Date.now();
      const victim = live.splice(Math.floor(Math.random() * live.length), 1)[0];
      await tenant.end(victim.id);
      const endedAt = Date.now();
      revocations++;
      let refusedAt;
      while (Date.now() - endedAt < 5000) {
        const d = await decide(enforcer, victim);
        if (d.status === 401) {
          refusedAt = Date.now();
          break;
        }
        await sleep(2);
      }
      if (refusedAt === undefined) lost++;
      else latencies.push(refusedAt - endedAt);
      if (Date.now() >= nextSample) {
        sample();
        nextSample += sampleEveryMs;
      }
      await sleep(Math.max(0, revokeEveryMs - (Date.now() - tick)));
    }
    sample();
    const rss = drift(brokerRss);
    const heap = drift(pepHeap);
    return {
      name: 'soak: steady revocations',
      store: 'sqlite',
      liveSessions: sessions,
      revocations,
      lost,
      losses: lost,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      brokerRssMiB: rss,
      pepHeapMiB: heap,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
  } finally {
    await enforcer?.close();
    await broker.destroy();
  }
}
