// P6: what the gateway (`tether gateway`: route match, full PEP decision with a fresh DPoP
// proof, streaming proxy) adds to a request, beside what a bare Node reverse proxy
// (Fastify + @fastify/reply-from) and nginx add, all in front of the same upstream.
// Goals (issue #16), with the gateway's shipped defaults (logging and decision reporting on):
// added latency at 1 connection ≤ 250 µs p50 over direct; throughput at 16 connections
// ≥ 0.6 × the bare reply-from proxy's.

import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Client } from 'undici';
import { BenchTenant, REQUIREMENT, startBrokers } from './lib/broker.mjs';
import { nginxBinary, startNginx } from './lib/p6-nginx.mjs';
import { Child } from './lib/processes.mjs';
import { mintProofs } from './lib/proofs.mjs';
import { int, percentile, times } from './lib/stats.mjs';

export const title = 'Gateway: added latency and throughput vs direct, a bare reply-from proxy and nginx';

const LATENCY_REQUESTS = Number(process.env.TETHER_BENCH_P6_REQUESTS ?? 3000);
const THROUGHPUT_REQUESTS = Number(process.env.TETHER_BENCH_P6_THROUGHPUT ?? 15_000);
const REPETITIONS = Number(process.env.TETHER_BENCH_P6_REPETITIONS ?? 3);
const CONNECTIONS = 16;
const PATH = '/r1/status';
const AUDIENCE = 'https://p6.bench.example';
const LATENCY_TARGET_US = 250;
const THROUGHPUT_TARGET = 0.6;
const SERVERS = new URL('./lib/p6-servers.mjs', import.meta.url);

/** p50 (µs) of `count` sequential GETs over one keep-alive connection; every answer must be 200. */
async function latencyP50(origin, count, headersOf) {
  const client = new Client(origin, { pipelining: 1, connections: 1 });
  const latencies = new Array(count);
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const { statusCode, body } = await client.request({ method: 'GET', path: PATH, headers: headersOf(i) });
      await body.dump();
      latencies[i] = performance.now() - t0;
      if (statusCode !== 200) throw new Error(`${origin} answered ${statusCode}`);
    }
  } finally {
    await client.close();
  }
  return percentile(latencies, 50) * 1000;
}

/** Requests per second of `amount` GETs on 16 connections (autocannon); refusals make the run invalid. */
async function throughput(origin, amount, headersOf) {
  let next = 0;
  const r = await autocannon({
    url: origin,
    connections: CONNECTIONS,
    pipelining: 1,
    amount,
    sampleInt: 10,
    timeout: 10,
    requests: [
      { method: 'GET', path: PATH, setupRequest: (req) => ({ ...req, headers: headersOf(next++) }) },
    ],
  });
  const bad = r.non2xx + r.errors + r.timeouts;
  if (bad > 0) throw new Error(`${origin}: ${bad} of ${r.requests.total} requests refused or failed`);
  return r.requests.total / r.duration;
}

/** CPU time (user + system, µs) a target's process has used so far; NaN for nginx. */
async function cpuMicros(child) {
  if (!child) return Number.NaN;
  child.send({ type: 'cpu' });
  return (await child.expect('cpu')).micros;
}

/** The broker's process (a child of this one running broker-process.mjs), to read its CPU time. */
function brokerPid() {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('broker-process'))
        return Number(entry);
    } catch {
      // The process ended while being looked at.
    }
  }
  return undefined;
}

/** CPU time (µs) the process `pid` has used so far, from /proc (10 ms resolution); NaN without it. */
function procCpuMicros(pid) {
  if (pid === undefined) return Number.NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

/** The headers of request `i`: the session's token and a proof never sent before to `target`. */
async function requestHeaders(target, session, count) {
  let nonce;
  if (target.nonce) {
    target.child.send({ type: 'nonce' });
    nonce = (await target.child.expect('nonce')).nonce;
  }
  const proofs = await mintProofs(session, {
    method: 'GET',
    url: `${target.origin}${PATH}`,
    accessToken: session.token,
    count,
    nonce,
  });
  return (i) => ({ authorization: `DPoP ${session.token}`, dpop: proofs[i] });
}

async function startTargets(brokers, tenant, upstream, children, logFile) {
  const start = async (name, message) => {
    const child = new Child(SERVERS, `P6 ${name}`);
    children.push(child);
    child.send({ type: 'start', ...message });
    return (await child.expect('started', { timeoutMs: 30_000 })).origin;
  };
  const identity = await tenant.principal('p6-gateway', 'service', ['pep']);
  // The broker records decisions only for an audience an admin set for the PEP's principal.
  await tenant.admin.call('PUT', '/v1/peps/p6-gateway/audiences', { audiences: [AUDIENCE] });
  const config = {
    upstream,
    broker: brokers.urls[0],
    issuer: brokers.publicUrl,
    audience: AUDIENCE,
    routes: [{ method: 'GET', path: PATH, action: REQUIREMENT.action, resource: REQUIREMENT.resource }],
  };
  const targets = [{ name: 'direct', origin: upstream, child: children[0] }];
  for (const [name, quiet] of [
    ['gateway (shipped defaults)', false],
    ['gateway (logging and reporting off)', true],
  ]) {
    const origin = await start(name, { mode: 'gateway', config, identity, quiet, logFile });
    targets.push({ name, origin, child: children.at(-1), nonce: true });
  }
  const replyFrom = await start('reply-from', { mode: 'reply-from', upstream });
  targets.push({ name: 'reply-from', origin: replyFrom, child: children.at(-1) });
  return targets;
}

/** min / median / max of three or more figures. */
function spread(values, format) {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    median: sorted[Math.floor((sorted.length - 1) / 2)],
    text: `${format(sorted[0])} / ${format(sorted[Math.floor((sorted.length - 1) / 2)])} / ${format(sorted.at(-1))}`,
  };
}

const us = (n) => `${Math.round(n)} µs`;

/** One repetition: every target's latency, then every target's throughput, in turn. */
async function repetition(targets, session, broker, rep, log) {
  const figures = new Map();
  // Rotated each repetition so that no target is always first after the others.
  const order = targets.map((_, i) => targets[(i + rep) % targets.length]);
  for (const target of order) {
    const warm = Math.max(100, Math.round(LATENCY_REQUESTS / 10));
    const headers = await requestHeaders(target, session, warm + LATENCY_REQUESTS);
    await latencyP50(target.origin, warm, headers);
    const p50 = await latencyP50(target.origin, LATENCY_REQUESTS, (i) => headers(warm + i));
    figures.set(target.name, { p50 });
  }
  for (const target of order) {
    const warm = Math.max(500, Math.round(THROUGHPUT_REQUESTS / 10));
    const count = warm + THROUGHPUT_REQUESTS + 4 * CONNECTIONS;
    const headers = await requestHeaders(target, session, count);
    await throughput(target.origin, warm, headers);
    const cpuBefore = await cpuMicros(target.child);
    const brokerBefore = procCpuMicros(broker);
    figures.get(target.name).rps = await throughput(target.origin, THROUGHPUT_REQUESTS, (i) =>
      headers(warm + i),
    );
    const cpuAfter = await cpuMicros(target.child);
    figures.get(target.name).cpu = (cpuAfter - cpuBefore) / THROUGHPUT_REQUESTS;
    // Decisions of the run are sent within a second of it: wait for them before reading the broker.
    if (target.nonce) await new Promise((resolve) => setTimeout(resolve, 1500));
    figures.get(target.name).brokerCpu = (procCpuMicros(broker) - brokerBefore) / THROUGHPUT_REQUESTS;
  }
  for (const [name, f] of figures)
    log(
      `rep ${rep + 1} ${name}: p50 ${us(f.p50)}, ${int(f.rps)} req/s, CPU per request ${us(f.cpu)} (broker ${us(f.brokerCpu)})`,
    );
  return figures;
}

export async function run({ log }) {
  const brokers = await startBrokers();
  const children = [];
  const logFile = join(tmpdir(), `p6-gateway-${process.pid}.log`);
  let nginx;
  try {
    const tenant = new BenchTenant(brokers);
    await tenant.grant(AUDIENCE);
    const session = await tenant.session();
    const upstreamChild = new Child(SERVERS, 'P6 upstream');
    children.push(upstreamChild);
    upstreamChild.send({ type: 'start', mode: 'upstream' });
    const upstream = (await upstreamChild.expect('started')).origin;
    const targets = await startTargets(brokers, tenant, upstream, children, logFile);
    const binary = nginxBinary();
    if (binary) {
      nginx = await startNginx(binary, upstream);
      targets.push({ name: 'nginx', origin: nginx.origin });
    } else log('nginx is not installed: skipped (apt-get install -y nginx to compare with it)');
    const reps = [];
    for (let rep = 0; rep < REPETITIONS; rep++)
      reps.push(await repetition(targets, session, brokerPid(), rep, log));

    const rows = [];
    const verdicts = [];
    for (const target of targets.slice(1)) {
      const added = spread(
        reps.map((f) => f.get(target.name).p50 - f.get('direct').p50),
        us,
      );
      const ratio = spread(
        reps.map((f) => f.get(target.name).rps / f.get('reply-from').rps),
        times,
      );
      rows.push([`${target.name}: added p50 latency at 1 connection (min / median / max)`, added.text]);
      if (target.name !== 'reply-from')
        rows.push([`${target.name}: throughput ÷ reply-from at ${CONNECTIONS} connections`, ratio.text]);
      if (target.name === 'gateway (shipped defaults)') {
        verdicts.push({
          figure: 'gateway (shipped defaults): added p50 latency over direct, 1 connection (median)',
          value: us(added.median),
          target: `≤ ${LATENCY_TARGET_US} µs`,
          met: added.median <= LATENCY_TARGET_US,
        });
        verdicts.push({
          figure: `gateway (shipped defaults): throughput ÷ reply-from, ${CONNECTIONS} connections (median)`,
          value: times(ratio.median),
          target: `≥ ${THROUGHPUT_TARGET}×`,
          met: ratio.median >= THROUGHPUT_TARGET,
        });
      }
    }
    for (const name of targets.map((t) => t.name)) {
      const p50 = spread(
        reps.map((f) => f.get(name).p50),
        us,
      );
      const rps = spread(
        reps.map((f) => f.get(name).rps),
        (n) => `${int(n)}/s`,
      );
      rows.push([
        `${name}: p50 at 1 connection / req/s at ${CONNECTIONS} (min / median / max)`,
        `${p50.text}; ${rps.text}`,
      ]);
      if (name !== 'nginx')
        rows.push([
          `${name}: CPU of its process per request at ${CONNECTIONS} connections (min / median / max)`,
          spread(
            reps.map((f) => f.get(name).cpu),
            us,
          ).text,
        ]);
      if (name.startsWith('gateway'))
        rows.push([
          `${name}: CPU of the broker per request (min / median / max)`,
          spread(
            reps.map((f) => f.get(name).brokerCpu),
            us,
          ).text,
        ]);
    }
    const shipped = targets.find((t) => t.name === 'gateway (shipped defaults)').child;
    shipped.send({ type: 'stats' });
    const { decisions } = await shipped.expect('stats');
    rows.push([
      'gateway (shipped defaults): decisions reported / dropped / buffered; log written',
      `${int(decisions?.sent)} / ${int(decisions?.dropped)} / ${int(decisions?.buffered)}; ${existsSync(logFile) ? `${int(statSync(logFile).size / 1024)} KiB` : '—'}`,
    ]);
    return {
      rows,
      verdicts,
      notes: [
        `${REPETITIONS} repetitions; in each, every target in turn (order rotated): ${int(LATENCY_REQUESTS)} sequential GETs on one keep-alive connection (undici Client) for the p50, then ${int(THROUGHPUT_REQUESTS)} GETs by autocannon on ${CONNECTIONS} connections for the throughput, each after a warm-up; the load generator in the runner's process, the upstream, each gateway and the reply-from proxy in processes of their own, the broker in another, nginx with one worker.`,
        'Every request carries the same access token and a DPoP proof never sent before to that target (minted just before its run, with the gateway’s current DPoP nonce); the gateway verifies each proof (htu = its public URL, replay cache) and strips the credentials before forwarding. The other proxies forward them untouched.',
        'CPU per request is the process’s user + system time over the throughput run ÷ its requests (the proxies’ figure excludes the upstream’s; direct is the upstream’s own): unlike latency and throughput, it hardly moves with the load other processes put on the machine.',
        'Shipped defaults: the logger `tether gateway` builds (pino, level info, one line per request at completion) writing to a file, decision reporting to the broker on (batched, bounded buffer, drops counted). "Added latency" is the p50 through the proxy minus the p50 straight to the upstream in the same repetition.',
        ...(binary ? [] : ['nginx is not installed here: its row is missing (apt-get install -y nginx).']),
      ],
    };
  } finally {
    await nginx?.stop();
    await Promise.all(children.map((c) => c.stop()));
    await brokers.stop();
    rmSync(logFile, { force: true });
  }
}
