// Side-by-side benchmarks, printed as a table with ratios. Run with `npm run bench`.
// Measured, never asserted: the figures go to stdout and to bench/RESULTS.md.
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { Bench } from 'tinybench';
import { DEMO_POLICIES } from '../packages/broker/dist/demo/policies.js';
import { PolicyEngine } from '../packages/broker/dist/policy/cedar.js';

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
const rows = bench.tasks.map((t) => ({
  name: t.name,
  hz: t.result.throughput?.mean ?? t.result.hz,
  p50: t.result.latency?.p50 ?? t.result.p50,
}));
const [hot, coldRow] = rows;
const lines = [
  '| benchmark | ops/s | p50 (µs) |',
  '| --- | ---: | ---: |',
  ...rows.map(
    (r) => `| ${r.name} | ${Math.round(r.hz).toLocaleString('en-US')} | ${(r.p50 * 1000).toFixed(1)} |`,
  ),
  '',
  `Preparsed ÷ parsed-per-call throughput: **${(hot.hz / coldRow.hz).toFixed(1)}×**`,
];
const header = `# Benchmarks\n\nMachine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}. Date: ${new Date().toISOString()}.\n\n`;
console.log(lines.join('\n'));
writeFileSync(new URL('./RESULTS.md', import.meta.url), `${header}${lines.join('\n')}\n`);
