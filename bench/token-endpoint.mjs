// Token endpoint: Tether's `POST /oauth/token` (refresh with its re-evaluation; client
// credentials) against panva's oidc-provider doing the same grants with the same client
// authentication (private_key_jwt) and DPoP. Every server in its own process, the load in
// another; Tether on a fresh durable SQLite file (WAL, synchronous=FULL) and on a fresh
// PostgreSQL schema. Interleaved, three repetitions, min/median/max of Tether ÷ peer.
import { exportJWK, generateKeyPair } from 'jose';
import { BoundSession, exportSessionKey, generateSessionKey } from '../packages/client/dist/index.js';
import { BenchTenant, postgresProblem, startBrokers } from './lib/broker.mjs';
import { Child, freePort } from './lib/processes.mjs';
import { int, ms, percentile, times } from './lib/stats.mjs';
import { childrenRunning, cpuMs } from './lib/token-cpu.mjs';

export const title = 'Token endpoint: refresh and client_credentials vs oidc-provider';

const CLIENTS = Number(process.env.TETHER_BENCH_TOKEN_CLIENTS ?? 8);
const REQUESTS = Number(process.env.TETHER_BENCH_TOKEN_REQUESTS ?? 2000);
const REPETITIONS = Number(process.env.TETHER_BENCH_TOKEN_REPETITIONS ?? 3);
const WARMUP = Math.min(300, Math.max(50, Math.floor(REQUESTS / 5)));
const TARGET = 0.8;
const GRANTS = [
  { grant: 'refresh_token', label: 'refresh' },
  { grant: 'client_credentials', label: 'client_credentials' },
];

async function dpopKeys(count) {
  const keys = [];
  for (let i = 0; i < count; i++) {
    const { privateKey } = await generateKeyPair('Ed25519', { extractable: true });
    keys.push(await exportJWK(privateKey));
  }
  return keys;
}

/**
 * A live session of the benchmark privilege for one refresh client: an hour long (the
 * privilege's longest), so that no full run outlives it. Answers its key and refresh token.
 */
async function refreshClient(tenant) {
  const request = await tenant.pipeline.call('POST', '/v1/requests', {
    privilege: 'bench',
    justification: 'benchmark',
    duration: 3600,
  });
  const key = await generateSessionKey({ extractable: true });
  const session = await BoundSession.activate(tenant.pipeline, request.id, key);
  return { dpopJwk: await exportSessionKey(key), refreshToken: session.tokens.refreshToken };
}

/** A Tether broker with a tenant: a principal for client credentials, a session per client. */
async function tetherTarget(load, name, postgres) {
  const running = new Set(childrenRunning('broker-process.mjs'));
  const brokers = await startBrokers({ postgres });
  const pid = childrenRunning('broker-process.mjs').find((p) => !running.has(p));
  try {
    const tenant = new BenchTenant(brokers);
    await tenant.grant('https://api.bench.example');
    const identity = await tenant.principal('bench-client', 'service');
    const refreshClients = [];
    for (let i = 0; i < CLIENTS; i++) refreshClients.push(await refreshClient(tenant));
    const cc = await dpopKeys(CLIENTS);
    const auth = {
      clientId: identity.principal,
      kid: identity.key.kid,
      audience: `${brokers.publicUrl}/oauth/token`,
      privateJwk: identity.key,
    };
    const tokenUrl = `${brokers.urls[0]}/oauth/token`;
    const htu = `${brokers.publicUrl}/oauth/token`;
    // Refresh: each client holds a session (its key, its refresh token); Tether's refresh grant
    // authenticates the holder by the DPoP key the session is bound to, not by a client assertion.
    load.send({
      type: 'target',
      name: `${name}:refresh_token`,
      tokenUrl,
      htu,
      authenticatesRefresh: false,
      clients: refreshClients,
    });
    await load.expect('target');
    load.send({
      type: 'target',
      name: `${name}:client_credentials`,
      tokenUrl,
      htu,
      clients: cc.map((dpopJwk) => ({ dpopJwk, auth })),
    });
    await load.expect('target');
    return { name, pid, stop: brokers.stop };
  } catch (err) {
    await brokers.stop();
    throw err;
  }
}

/** oidc-provider in its own process, one client; refresh tokens bound to each client's DPoP key. */
async function peerTarget(load) {
  const peer = new Child(new URL('./lib/token-peer.mjs', import.meta.url), 'oidc-provider');
  try {
    const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
    const clientJwk = { ...(await exportJWK(publicKey)), kid: 'bench-client-key', alg: 'EdDSA', use: 'sig' };
    const clientPrivate = { ...(await exportJWK(privateKey)), kid: clientJwk.kid };
    peer.send({ type: 'start', port: await freePort(), clientJwk });
    const started = await peer.expect('started');
    const auth = {
      clientId: started.clientId,
      kid: clientJwk.kid,
      audience: started.tokenUrl,
      privateJwk: clientPrivate,
    };
    const common = { tokenUrl: started.tokenUrl, htu: started.tokenUrl };
    const refreshKeys = await dpopKeys(CLIENTS);
    load.send({
      type: 'target',
      name: 'peer:refresh_token',
      ...common,
      authenticatesRefresh: true,
      clients: refreshKeys.map((dpopJwk) => ({ dpopJwk, auth })),
    });
    const { jkts } = await load.expect('target');
    peer.send({ type: 'refreshTokens', jkts });
    const { tokens } = await peer.expect('refresh-tokens');
    load.send({ type: 'chains', name: 'peer:refresh_token', refreshTokens: tokens });
    await load.expect('chains');
    const ccKeys = await dpopKeys(CLIENTS);
    load.send({
      type: 'target',
      name: 'peer:client_credentials',
      ...common,
      scope: 'api:read',
      clients: ccKeys.map((dpopJwk) => ({ dpopJwk, auth })),
    });
    await load.expect('target');
    return { name: 'peer', pid: peer.pid, stop: () => peer.stop() };
  } catch (err) {
    await peer.stop();
    throw err;
  }
}

async function measure(load, target, grant, requests) {
  const cpuBefore = cpuMs(target.pid);
  load.send({ type: 'run', name: `${target.name}:${grant}`, grant, requests });
  const ran = await load.expect('ran', { timeoutMs: 600_000 });
  return {
    throughput: ran.done / ran.seconds,
    cpuPerGrant: (cpuMs(target.pid) - cpuBefore) / ran.done,
    p50: percentile(ran.latencies, 50),
    p99: percentile(ran.latencies, 99),
  };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const spread = (values) =>
  `${times(Math.min(...values))} / ${times(median(values))} / ${times(Math.max(...values))}`;

export async function run({ log = () => undefined } = {}) {
  const load = new Child(new URL('./lib/token-load.mjs', import.meta.url), 'token load');
  const targets = [];
  const notes = [];
  try {
    log('starting Tether on SQLite and oidc-provider');
    targets.push(await tetherTarget(load, 'sqlite', false));
    targets.push(await peerTarget(load));
    const pgProblem = await postgresProblem();
    if (pgProblem) notes.push(`PostgreSQL figures skipped: ${pgProblem}.`);
    else targets.push(await tetherTarget(load, 'postgres', true));
    const names = targets.map((t) => t.name);

    const results = {};
    for (const { grant } of GRANTS)
      for (const target of targets) {
        await measure(load, target, grant, WARMUP);
        results[`${target.name}:${grant}`] = [];
      }
    for (let rep = 0; rep < REPETITIONS; rep++)
      // Interleaved: each repetition measures every server on the grant back to back.
      for (const { grant, label } of GRANTS)
        for (const target of rep % 2 === 0 ? targets : [...targets].reverse()) {
          const figure = await measure(load, target, grant, REQUESTS);
          results[`${target.name}:${grant}`].push(figure);
          log(
            `rep ${rep + 1} ${label} ${target.name}: ${int(figure.throughput)}/s p50 ${ms(figure.p50)}, server CPU ${ms(figure.cpuPerGrant)}/grant`,
          );
        }
    return summarise(results, names, notes);
  } finally {
    await load.stop();
    for (const t of targets) await t.stop().catch(() => undefined);
  }
}

function summarise(results, names, notes) {
  const rows = [];
  const verdicts = [];
  for (const { grant, label } of GRANTS) {
    for (const name of names) {
      const figures = results[`${name}:${grant}`];
      const who = name === 'peer' ? 'oidc-provider (in memory)' : `Tether on ${name}`;
      rows.push([
        `${label}, ${who}: throughput per repetition`,
        figures.map((f) => `${int(f.throughput)}/s`).join(' · '),
      ]);
      rows.push([
        `${label}, ${who}: server CPU per grant (median)`,
        ms(median(figures.map((f) => f.cpuPerGrant))),
      ]);
      rows.push([
        `${label}, ${who}: p50 / p99 (median run)`,
        (() => {
          const m = [...figures].sort((a, b) => a.throughput - b.throughput)[Math.floor(figures.length / 2)];
          return `${ms(m.p50)} / ${ms(m.p99)}`;
        })(),
      ]);
    }
    for (const name of names.filter((n) => n !== 'peer')) {
      const ratios = results[`${name}:${grant}`].map(
        (f, i) => f.throughput / results[`peer:${grant}`][i].throughput,
      );
      rows.push([`${label}: Tether on ${name} ÷ oidc-provider (min / median / max)`, spread(ratios)]);
      const value = median(ratios);
      verdicts.push({
        figure: `${label}, Tether on ${name} ÷ oidc-provider (median)`,
        value: times(value),
        ...(name === 'sqlite' ? { target: `≥ ${TARGET}×`, met: value >= TARGET } : {}),
      });
    }
  }
  notes.push(
    `${CLIENTS} concurrent clients in one load process, each in a loop; ${REQUESTS} grants per server per grant type per repetition, ${REPETITIONS} repetitions interleaved; every request with a fresh DPoP proof (Ed25519, jose) and, where client authentication applies, a fresh private_key_jwt assertion (Ed25519). Latencies are on the wire (minting excluded). Server CPU per grant: user + system time of the server process (/proc, 10 ms ticks) over the run ÷ grants — less sensitive to the machine's other load than throughput.`,
    'Tether runs on a fresh SQLite file in WAL mode with synchronous=FULL (every acknowledged grant is durable: DPoP and assertion jtis, the rotated refresh token, the audit record), then on a fresh PostgreSQL schema. oidc-provider runs with its default in-memory adapter: it persists nothing (grants, rotated refresh tokens and replay records are lost on restart); its storage is given room for the whole run (the default keeps 1000 entries and, with two jtis written per grant, drops live grants after a few hundred grants).',
    'oidc-provider: private_key_jwt (EdDSA), dpop_bound_access_tokens, rotateRefreshToken: true, refresh tokens bound to the DPoP key, JWT access tokens (RFC 9068, EdDSA) through a resource indicator — tokens a PEP checks locally, like Tether’s.',
    'Refresh: oidc-provider’s client authenticates with private_key_jwt on each refresh (its confidential client must); Tether’s refresh grant authenticates the holder by the session’s DPoP key and does no client assertion, but re-evaluates the session (principal, privilege, Cedar policy), writes an audit record to the tenant’s hash chain and checks the refresh idle expiry.',
  );
  return { rows, verdicts, notes };
}
