// Cedar policy decisions: a preparsed policy set (the broker's cache) against one parsed per call.
import { Bench } from 'tinybench';
import { DEMO_POLICIES } from '../packages/broker/dist/demo/policies.js';
import { PolicyEngine } from '../packages/broker/dist/policy/cedar.js';
import { int, ms, times } from './lib/stats.mjs';

export const title = 'Cedar policy decision: preparsed set vs parsed per call';

const principal = {
  id: 'prn_a',
  name: 'olivia',
  kind: 'human',
  enabled: true,
  groups: ['operators'],
  attributes: { team: 'netops' },
};
const input = {
  action: 'request',
  principal,
  requester: principal,
  privilege: { id: 'prv_f', name: 'firewall-admin', attributes: { risk: 'high' } },
  ticket: 'NET-1234',
  durationSeconds: 1800,
  reason: 'bench',
  at: Date.UTC(2026, 0, 5, 10),
  timeZone: 'UTC',
};

export async function run() {
  const engine = new PolicyEngine();
  let cold = 0;
  const bench = new Bench({ time: 1500, warmupTime: 300 });
  bench
    .add('policy decision, preparsed set (cache hit)', () => {
      engine.decide('bench:1', DEMO_POLICIES, input);
    })
    .add('policy decision, set parsed per call (cache miss)', () => {
      cold += 1;
      engine.decide(`bench:cold:${cold}`, DEMO_POLICIES, input);
    });
  await bench.run();
  const [hot, miss] = bench.tasks.map((t) => ({
    name: t.name,
    hz: t.result.throughput?.mean ?? t.result.hz,
    p50: t.result.latency?.p50 ?? t.result.p50,
  }));
  return {
    rows: [
      [`${hot.name}: ops/s`, int(hot.hz)],
      [`${hot.name}: p50`, ms(hot.p50)],
      [`${miss.name}: ops/s`, int(miss.hz)],
      [`${miss.name}: p50`, ms(miss.p50)],
    ],
    verdicts: [{ figure: 'preparsed ÷ parsed-per-call throughput', value: times(hot.hz / miss.hz) }],
    notes: [],
  };
}
