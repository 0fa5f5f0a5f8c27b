// Side-by-side benchmarks, printed as tables with ratios. Run with `npm run bench` (all of them)
// or `npm run bench -- p1 p3` (a subset). Measured, never asserted: the figures go to stdout and
// to bench/RESULTS.md. A subset run replaces only its own benchmarks there (the results are kept
// in the file, in a comment, for that); each section says when and on what it was measured.
//
// Each benchmark is a module that exports `title` and `run({ log })`, which answers
// `{ rows: [[measure, value]], verdicts: [{ figure, value, target?, met? }], notes: [] }`
// (`met` undefined with a target: pending).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';

const BENCHMARKS = {
  cedar: './cedar.mjs',
  p1: './p1-pep-throughput.mjs',
  p2: './p2-local-vs-introspection.mjs',
  p3: './p3-revocation-propagation.mjs',
  p6: './p6-gateway-latency.mjs',
  c1: './c1-connector-cut.mjs',
  a1: './a1-authzen.mjs',
  cli: './cli-startup.mjs',
  peer: './peer-pep.mjs',
  token: './token-endpoint.mjs',
  scale: './scale.mjs',
};
const REPORT = new URL('./RESULTS.md', import.meta.url);
/** The results themselves, base64url JSON in an HTML comment at the end of the report. */
const DATA = /<!-- bench-data: ([A-Za-z0-9_-]+) -->/;

function earlierResults() {
  if (!existsSync(REPORT)) return {};
  const found = DATA.exec(readFileSync(REPORT, 'utf8'));
  try {
    return found ? JSON.parse(Buffer.from(found[1], 'base64url').toString('utf8')) : {};
  } catch {
    return {};
  }
}

const asked = process.argv.slice(2).map((a) => a.toLowerCase());
const unknown = asked.filter((a) => !(a in BENCHMARKS));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(BENCHMARKS).join(', ')}`);
  process.exit(2);
}
const selected =
  asked.length > 0 ? Object.keys(BENCHMARKS).filter((id) => asked.includes(id)) : Object.keys(BENCHMARKS);

function machine() {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model?.trim() ?? 'unknown',
    cores: cpu.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    os: `${process.platform} ${release()}`,
    load: loadavg().map((l) => Number(l.toFixed(2))),
  };
}

const describe = (m) =>
  `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB; Node ${m.node} on ${m.os}; load average ${m.load.join(' ')}`;

function verdictText(v) {
  if (v.met === undefined) return v.target ? 'pending' : '';
  return v.met ? 'met' : 'not met';
}

/** A benchmark's section: when and where, its figures, its ratios against their targets, its notes. */
function section(id, entry) {
  const { title, result } = entry;
  const lines = [`## ${id.toUpperCase()} — ${title}`, ''];
  lines.push(
    `Measured ${entry.date} in ${entry.seconds} s on ${describe(entry.machine)} (at its start).`,
    '',
  );
  if (result.error) {
    lines.push(`**Failed:** ${result.error}`, '');
    return lines;
  }
  lines.push('| measure | value |', '| --- | ---: |', ...result.rows.map(([k, v]) => `| ${k} | ${v} |`), '');
  for (const v of result.verdicts) {
    const target = v.target ? ` — target ${v.target}: **${verdictText(v)}**` : '';
    lines.push(`- ${v.figure}: **${v.value}**${target}`);
  }
  for (const note of result.notes) lines.push(`- ${note}`);
  lines.push('');
  return lines;
}

function summary(entries) {
  const lines = ['| benchmark | figure | value | target | result |', '| --- | --- | ---: | --- | --- |'];
  for (const [id, { result }] of entries) {
    if (result.error) {
      lines.push(`| ${id.toUpperCase()} | — | — | — | failed |`);
      continue;
    }
    for (const v of result.verdicts) {
      lines.push(
        `| ${id.toUpperCase()} | ${v.figure} | ${v.value} | ${v.target ?? ''} | ${verdictText(v)} |`,
      );
    }
  }
  return lines;
}

const startedAt = new Date();
const here = machine();
console.log(`# Benchmarks: ${selected.join(', ')}\n\n${describe(here)}\n${startedAt.toISOString()}\n`);

// A full run starts afresh; a subset keeps what earlier runs measured for the others.
const previous = asked.length > 0 ? earlierResults() : {};
const store = { benchmarks: { ...(previous.benchmarks ?? {}) } };
for (const id of selected) {
  const module = await import(BENCHMARKS[id]);
  console.log(`— ${id.toUpperCase()}: ${module.title} …`);
  const entry = { title: module.title, date: new Date().toISOString(), machine: machine() };
  const t0 = performance.now();
  try {
    entry.result = await module.run({ log: (line) => console.log(`  ${line}`) });
  } catch (err) {
    console.error(err);
    entry.result = { error: err instanceof Error ? err.message.split('\n')[0] : String(err) };
  }
  entry.seconds = Math.round((performance.now() - t0) / 1000);
  store.benchmarks[id] = entry;
  console.log(`\n${section(id, entry).join('\n')}`);
}

const entries = Object.keys(BENCHMARKS)
  .filter((id) => store.benchmarks[id])
  .map((id) => [id, store.benchmarks[id]]);
const total = Math.round((Date.now() - startedAt.getTime()) / 1000);
const kept = entries.filter(([id]) => !selected.includes(id)).map(([id]) => id.toUpperCase());
const report = [
  '# Benchmarks',
  '',
  `Last run: ${startedAt.toISOString()}, \`npm run bench${asked.length > 0 ? ` -- ${asked.join(' ')}` : ''}\`, ${total} s, on ${describe(here)} (at its start).` +
    (kept.length > 0 ? ` ${kept.join(', ')}: from earlier runs (see each section).` : ''),
  '',
  ...summary(entries),
  '',
  ...entries.flatMap(([id, entry]) => section(id, entry)),
  `<!-- bench-data: ${Buffer.from(JSON.stringify(store)).toString('base64url')} -->`,
];
console.log(['', ...summary(entries), '', `Run time: ${total} s.`].join('\n'));
writeFileSync(REPORT, `${report.join('\n').trimEnd()}\n`);
if (selected.some((id) => store.benchmarks[id].result.error)) process.exitCode = 1;
