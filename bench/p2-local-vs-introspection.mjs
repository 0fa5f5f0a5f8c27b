// P2: median latency of a local PEP decision (enforcer.authorize on an in-process request with
// a fresh DPoP proof) against RFC 7662 introspection of the same token, one per request,
// against the broker over loopback. Target: local ≥ 50× faster. Also the cost of PEP-issued
// DPoP nonces (RFC 9449 §9, `dpopNonce`): the same decisions on an enforcer that requires them.
// And the local decision against one bare synchronous signature verification of the same proof
// (issue #16: median ≤ 1.5×), interleaved, three repetitions.
import { execFileSync } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { BrokerClient } from '../packages/client/dist/index.js';
import { BenchTenant, REQUIREMENT, startBenchEnforcer, startBrokers } from './lib/broker.mjs';
import { mintProofs } from './lib/proofs.mjs';
import { ms, percentile, times } from './lib/stats.mjs';

export const title = 'Local PEP decision vs RFC 7662 introspection per request (median latency)';

const LOCAL = Number(process.env.TETHER_BENCH_P2_LOCAL ?? 3000);
const REMOTE = Number(process.env.TETHER_BENCH_P2_INTROSPECTIONS ?? 600);
const AUDIENCE = 'https://p2.bench.example';
const URL_PATH = '/status';
const TARGET = 50;
const VERIFY_TARGET = 1.5;
const REPETITIONS = 3;

/** Times `count` sequential decisions, each with a proof of its own; answers the latencies (ms). */
async function localDecisions(enforcer, token, proofs, from, count) {
  const latencies = [];
  for (let i = from; i < from + count; i++) {
    const t0 = performance.now();
    const decision = await enforcer.authorize({
      method: 'GET',
      url: URL_PATH,
      headers: { authorization: `DPoP ${token}`, dpop: proofs[i] },
      ...REQUIREMENT,
    });
    latencies.push(performance.now() - t0);
    if (!decision.allow)
      throw new Error(`the PEP refused a valid request: ${decision.code} ${decision.description}`);
  }
  return latencies;
}

/** One bare node:crypto Ed25519 verification of each proof (what no PEP can go below). */
function rawVerifications(key, proofs) {
  return proofs.map((proof) => {
    const t0 = performance.now();
    const dot = proof.lastIndexOf('.');
    if (!verify(null, Buffer.from(proof.slice(0, dot)), key, Buffer.from(proof.slice(dot + 1), 'base64url')))
      throw new Error('a minted proof does not verify');
    return performance.now() - t0;
  });
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * Local decisions against bare verifications of the same proofs: per repetition, fresh proofs,
 * then chunks of each in turn (the side going first alternating). Answers the pooled latencies
 * and each repetition's ratio of medians.
 */
async function localAgainstVerification(enforcer, session, log) {
  const key = createPublicKey({ key: session.key.publicJwk, format: 'jwk' });
  const local = [];
  const floor = [];
  const ratios = [];
  for (let rep = 0; rep < REPETITIONS; rep++) {
    const proofs = await mintProofs(session, {
      method: 'GET',
      url: `${AUDIENCE}${URL_PATH}`,
      accessToken: session.token,
      count: LOCAL,
    });
    const repLocal = [];
    const repFloor = [];
    const chunk = Math.ceil(LOCAL / 10);
    for (let from = 0, c = 0; from < LOCAL; from += chunk, c++) {
      const n = Math.min(chunk, LOCAL - from);
      const bare = () => repFloor.push(...rawVerifications(key, proofs.slice(from, from + n)));
      if (c % 2 === 1) bare();
      repLocal.push(...(await localDecisions(enforcer, session.token, proofs, from, n)));
      if (c % 2 === 0) bare();
    }
    ratios.push(percentile(repLocal, 50) / percentile(repFloor, 50));
    log(
      `repetition ${rep + 1}: local p50 ${ms(percentile(repLocal, 50))}, bare verification p50 ${ms(percentile(repFloor, 50))}`,
    );
    local.push(...repLocal);
    floor.push(...repFloor);
  }
  return { local, floor, ratios };
}

/**
 * Why introspection over an emulated 0.5 ms round trip (a network namespace whose loopback
 * delays each packet 0.25 ms with `tc netem`) cannot be measured here, or undefined when it can.
 */
function netemProblem() {
  const ns = `tether-bench-${process.pid}`;
  const run = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
  try {
    run('netns', 'add', ns);
  } catch (err) {
    return `\`ip netns add\` fails: ${String(err.stderr ?? err.message).trim()}`;
  }
  try {
    run('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
    run('netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '0.25ms');
    return undefined;
  } catch (err) {
    return `\`tc qdisc add dev lo root netem\` in a network namespace fails: ${String(err.stderr ?? err.message).trim()} (this kernel has no sch_netem)`;
  } finally {
    try {
      run('netns', 'del', ns);
    } catch {}
  }
}

/** Times `count` sequential introspections of `token` (one keep-alive connection, like a PEP's client). */
async function introspections(brokerUrl, bearer, token, count) {
  const latencies = [];
  const body = new URLSearchParams({ token }).toString();
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const response = await fetch(`${brokerUrl}/oauth/introspect`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    const answer = await response.json();
    latencies.push(performance.now() - t0);
    if (answer.active !== true)
      throw new Error(`introspection answered ${response.status} ${JSON.stringify(answer)}`);
  }
  return latencies;
}

export async function run({ log }) {
  const brokers = await startBrokers();
  let enforcer;
  let withNonce;
  try {
    const tenant = new BenchTenant(brokers);
    const pep = await tenant.principal('p2-pep', 'service', ['pep']);
    await tenant.grant(AUDIENCE);
    const session = await tenant.session();
    enforcer = await startBenchEnforcer(brokers, pep, AUDIENCE);
    // The same PEP, requiring nonces it issued (as the gateway does by default).
    withNonce = await startBenchEnforcer(brokers, pep, AUDIENCE, { dpopNonce: { required: true } });

    const warm = Math.round(LOCAL / 10);
    const proofs = await mintProofs(session, {
      method: 'GET',
      url: `${AUDIENCE}${URL_PATH}`,
      accessToken: session.token,
      count: warm + LOCAL,
    });
    await localDecisions(enforcer, session.token, proofs, 0, warm);
    const { local, floor, ratios } = await localAgainstVerification(enforcer, session, log);
    log(`local: p50 ${ms(percentile(local, 50))} over ${REPETITIONS} × ${LOCAL} decisions`);
    const nonced = await mintProofs(session, {
      method: 'GET',
      url: `${AUDIENCE}${URL_PATH}`,
      accessToken: session.token,
      count: warm + LOCAL,
      nonce: withNonce.dpopNonce(),
    });
    const plainMore = await mintProofs(session, {
      method: 'GET',
      url: `${AUDIENCE}${URL_PATH}`,
      accessToken: session.token,
      count: LOCAL,
    });
    await localDecisions(withNonce, session.token, nonced, 0, warm);
    // Interleaved chunks, each side first in turn, so drift and load hit both alike.
    const nonceLocal = [];
    const plainLocal = [];
    const chunk = Math.ceil(LOCAL / 10);
    for (let from = 0, c = 0; from < LOCAL; from += chunk, c++) {
      const n = Math.min(chunk, LOCAL - from);
      const withIt = () => localDecisions(withNonce, session.token, nonced, warm + from, n);
      const without = () => localDecisions(enforcer, session.token, plainMore, from, n);
      if (c % 2 === 0) {
        nonceLocal.push(...(await withIt()));
        plainLocal.push(...(await without()));
      } else {
        plainLocal.push(...(await without()));
        nonceLocal.push(...(await withIt()));
      }
    }
    log(
      `nonce: p50 ${ms(percentile(nonceLocal, 50))} with, ${ms(percentile(plainLocal, 50))} without, over ${LOCAL} decisions each`,
    );

    // The PEP's own broker-API token, as a PEP calling introspection would hold it (Bearer:
    // the cheapest caller authentication the broker accepts, so the comparison favours introspection).
    const bearer = await new BrokerClient({ identity: pep, dpop: false }).bearerToken();
    await introspections(brokers.urls[0], bearer, session.token, Math.round(REMOTE / 10));
    const remote = await introspections(brokers.urls[0], bearer, session.token, REMOTE);
    log(`introspection: p50 ${ms(percentile(remote, 50))} over ${REMOTE} calls`);

    const ratio = percentile(remote, 50) / percentile(local, 50);
    const netem = netemProblem();
    return {
      rows: [
        [
          'local decision (enforcer.authorize): p50 / p99',
          `${ms(percentile(local, 50))} / ${ms(percentile(local, 99))}`,
        ],
        [
          'introspection (POST /oauth/introspect): p50 / p99',
          `${ms(percentile(remote, 50))} / ${ms(percentile(remote, 99))}`,
        ],
        [
          'one bare Ed25519 verification (node:crypto) of the same proofs, interleaved: p50 / p99',
          `${ms(percentile(floor, 50))} / ${ms(percentile(floor, 99))}`,
        ],
        ['local p50 ÷ bare verification p50, per repetition', ratios.map(times).join(', ')],
        [
          'local decision requiring a PEP-issued DPoP nonce (dpopNonce): p50 / p99',
          `${ms(percentile(nonceLocal, 50))} / ${ms(percentile(nonceLocal, 99))}`,
        ],
        [
          'local decision without nonce, interleaved with the row above: p50 / p99',
          `${ms(percentile(plainLocal, 50))} / ${ms(percentile(plainLocal, 99))}`,
        ],
        ['samples (local / introspection)', `${REPETITIONS} × ${LOCAL} / ${REMOTE}`],
        [
          'introspection over an emulated 0.5 ms round trip (netem)',
          netem === undefined ? 'not implemented (see notes)' : 'not measured (see notes)',
        ],
      ],
      verdicts: [
        {
          figure: `local decision p50 ÷ one bare sync verification p50, median of ${REPETITIONS} (min / median / max ${times(Math.min(...ratios))} / ${times(median(ratios))} / ${times(Math.max(...ratios))})`,
          value: times(median(ratios)),
          target: `≤ ${VERIFY_TARGET}×`,
          met: median(ratios) <= VERIFY_TARGET,
        },
        {
          figure: 'introspection p50 ÷ local p50',
          value: times(ratio),
          target: `≥ ${TARGET}×`,
          met: ratio >= TARGET,
        },
        {
          figure: 'DPoP nonce cost: with-nonce p50 ÷ without-nonce p50 (interleaved)',
          value: times(percentile(nonceLocal, 50) / percentile(plainLocal, 50)),
        },
        {
          figure:
            'introspection p50 ÷ bare signature verification p50 (the most a local check of a fresh proof can reach)',
          value: times(percentile(remote, 50) / percentile(floor, 50)),
        },
      ],
      notes: [
        'Local: the whole decision — token (verified-token cache hit), fresh DPoP proof (one Ed25519 verification, replay cache), mirror, staleness, entitlement — sequential calls, each with a proof of its own.',
        'DPoP nonce: the proof carries the PEP\u2019s current nonce; the PEP compares the proof\u2019s (already verified) nonce claim with the two it accepts; the HMAC runs once per window. A shared replay store on the broker instead would cost at least one round trip per request, about the introspection figure above.',
        `Local ÷ bare verification: ${REPETITIONS} repetitions, each on ${LOCAL} fresh proofs, in chunks of a tenth taken in turn (local decisions, then node:crypto verifications of the same proofs, the side going first alternating); the decision verifies through jose on WebCrypto (asynchronous: a hop to the thread pool and back), the floor synchronously on the calling thread.`,
        netem === undefined
          ? 'Emulated round trip: netem works on this machine, but the broker would have to run inside the network namespace, which bench/lib/processes.mjs cannot start yet; not measured.'
          : `Emulated round trip: not measured, ${netem}.`,
        'Introspection: the round trip only (fetch, keep-alive, Bearer-authenticated PEP, JSON answer parsed) against the broker in its own process on SQLite, logging at warn; a PEP relying on it would still have to verify the proof locally.',
      ],
    };
  } finally {
    await enforcer?.close();
    await withNonce?.close();
    await brokers.stop();
  }
}
