// Peer PEP: Tether's local decision (enforcer.authorize) against panva's oauth4webapi
// `validateJwtAccessToken` with DPoP required — what a resource server would pick instead — on
// the same access token from a real broker and the same DPoP proofs, in one process,
// interleaved, three repetitions. Target (issue #16): Tether ≥ 2.5× oauth4webapi's throughput.
import * as oauth from 'oauth4webapi';
import { BenchTenant, REQUIREMENT, startBenchEnforcer, startBrokers } from './lib/broker.mjs';
import { mintProofs } from './lib/proofs.mjs';
import { int, times } from './lib/stats.mjs';

export const title =
  "PEP decision throughput: Tether's enforcer vs oauth4webapi validateJwtAccessToken (DPoP)";

const CALLS = Number(process.env.TETHER_BENCH_PEER_CALLS ?? 6000);
const REPETITIONS = 3;
const CHUNKS = 10;
/** Calls in flight at once on each side, as a server under load has them. */
const IN_FLIGHT = 16;
const AUDIENCE = 'https://peer.bench.example';
const URL_PATH = '/status';
const TARGET = 2.5;

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const spread = (values) =>
  `${times(Math.min(...values))} / ${times(median(values))} / ${times(Math.max(...values))}`;

/** Runs `call(i)` for every i of [from, to) with IN_FLIGHT at once; answers the elapsed ms. */
async function timed(from, to, call) {
  let next = from;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < to) await call(next++);
    }),
  );
  return performance.now() - t0;
}

/** The two sides, each a function of the index of the proof to present. */
async function sides(brokers, enforcer, session) {
  // oauth4webapi's own discovery of the broker's metadata; it fetches the JWKS itself on its
  // first validation and caches it (its default cache, per AuthorizationServer object).
  const issuer = new URL(brokers.publicUrl);
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', [oauth.allowInsecureRequests]: true }),
  );
  const options = {
    requireDPoP: true,
    signingAlgorithms: ['EdDSA'],
    [oauth.allowInsecureRequests]: true,
  };
  let proofs = [];
  let requests = [];
  return {
    /** Fresh proofs for a repetition; the peer's Request objects are built here, outside the timing. */
    async load(count) {
      proofs = await mintProofs(session, {
        method: 'GET',
        url: `${AUDIENCE}${URL_PATH}`,
        accessToken: session.token,
        count,
      });
      requests = proofs.map(
        (dpop) =>
          new Request(`${AUDIENCE}${URL_PATH}`, {
            headers: { authorization: `DPoP ${session.token}`, dpop },
          }),
      );
    },
    async tether(i) {
      const decision = await enforcer.authorize({
        method: 'GET',
        url: URL_PATH,
        headers: { authorization: `DPoP ${session.token}`, dpop: proofs[i] },
        ...REQUIREMENT,
      });
      if (!decision.allow) throw new Error(`Tether refused: ${decision.code} ${decision.description}`);
    },
    async peer(i) {
      const claims = await oauth.validateJwtAccessToken(as, requests[i], AUDIENCE, options);
      if (claims.sid !== session.id) throw new Error('oauth4webapi answered the claims of another token');
    },
  };
}

/** Per repetition: fresh proofs, then chunks of each side in turn, the side going first alternating. */
async function repetitions(side, log) {
  const runs = { tether: [], peer: [] };
  const chunk = Math.ceil(CALLS / CHUNKS);
  await side.load(chunk);
  await timed(0, chunk, side.tether);
  await timed(0, chunk, side.peer);
  for (let rep = 0; rep < REPETITIONS; rep++) {
    await side.load(CALLS);
    const elapsed = { tether: 0, peer: 0 };
    for (let from = 0, c = 0; from < CALLS; from += chunk, c++) {
      const to = Math.min(CALLS, from + chunk);
      const order = c % 2 === 0 ? ['tether', 'peer'] : ['peer', 'tether'];
      for (const name of order) elapsed[name] += await timed(from, to, side[name]);
    }
    for (const name of ['tether', 'peer']) runs[name].push((CALLS / elapsed[name]) * 1000);
    log(`repetition ${rep + 1}: Tether ${int(runs.tether[rep])}/s, oauth4webapi ${int(runs.peer[rep])}/s`);
  }
  return runs;
}

export async function run({ log }) {
  const brokers = await startBrokers();
  let enforcer;
  try {
    const tenant = new BenchTenant(brokers);
    const pep = await tenant.principal('peer-pep', 'service', ['pep']);
    await tenant.grant(AUDIENCE);
    const session = await tenant.session();
    enforcer = await startBenchEnforcer(brokers, pep, AUDIENCE);
    const runs = await repetitions(await sides(brokers, enforcer, session), log);
    const ratios = runs.tether.map((t, i) => t / runs.peer[i]);
    const range = (values) =>
      `${[...values]
        .sort((a, b) => a - b)
        .map(int)
        .join(' / ')} /s`;
    return {
      rows: [
        ['Tether enforcer.authorize: throughput min / median / max', range(runs.tether)],
        [
          'oauth4webapi validateJwtAccessToken (DPoP required): throughput min / median / max',
          range(runs.peer),
        ],
        ['Tether ÷ oauth4webapi, per repetition', ratios.map(times).join(', ')],
        ['calls per side and repetition / in flight', `${int(CALLS)} / ${IN_FLIGHT}`],
      ],
      verdicts: [
        {
          figure: `Tether ÷ oauth4webapi throughput, median of ${REPETITIONS} (min / median / max ${spread(ratios)})`,
          value: times(median(ratios)),
          target: `≥ ${TARGET}×`,
          met: median(ratios) >= TARGET,
        },
      ],
      notes: [
        `Same access token (from the broker, in its own process on SQLite) and the same DPoP proofs on both sides: per repetition ${int(CALLS)} proofs minted afresh (distinct jti, iat now), each presented once to each side; ${REPETITIONS} repetitions, each in ${CHUNKS} chunks taken by the two sides in turn (the side going first alternating), ${IN_FLIGHT} calls in flight; one warm-up chunk per side first.`,
        'Tether per call: the whole local decision — Authorization header, token (verified once, then from its verified-token cache by SHA-256 of the token, its times rechecked), the DPoP proof per RFC 9449 (typ, alg, public jwk, one Ed25519 signature through jose/WebCrypto, htm, htu, iat window, ath, cnf.jkt binding, single-use jti in the replay cache), the revocation mirror and its staleness, the entitlement — answering a decision object.',
        "oauth4webapi per call: its own checks of the token (JWS decode, Ed25519 signature through WebCrypto with the broker's key from its JWKS, which it discovered and fetched itself and keeps in its default cache, iss, aud, exp, required claims, cnf) and of the proof (typ, alg, signature through WebCrypto with the key imported from the proof's jwk, iat within ±300 s, htm, htu, ath, cnf.jkt thumbprint); no replay check (it leaves jti to the caller), no revocation, no entitlement. Its `Request` objects are built before the timing, so only validateJwtAccessToken is timed.",
        'Both in this process on one JavaScript thread; WebCrypto runs each signature on libuv worker threads, so both sides may use the second core.',
      ],
    };
  } finally {
    await enforcer?.close();
    await brokers.stop();
  }
}
