// A1: what an AuthZEN evaluation (POST /access/v1/evaluation, issue #15) costs per call, beside
// the local PEP decision it does not replace and RFC 7662 introspection, in one run: a gateway in
// another language asks the broker once per request; the local PEP decides from the token and its
// mirror of the revocation feed. Also a boxcar of 10 evaluations (POST /access/v1/evaluations),
// per evaluation. Sequential calls over one keep-alive connection, interleaved in chunks.
import { BrokerClient } from '../packages/client/dist/index.js';
import { BenchTenant, REQUIREMENT, startBenchEnforcer, startBrokers } from './lib/broker.mjs';
import { mintProofs } from './lib/proofs.mjs';
import { ms, percentile, times } from './lib/stats.mjs';

export const title =
  'AuthZEN evaluation per call vs the local PEP decision and introspection (median latency)';

const CALLS = Number(process.env.TETHER_BENCH_A1_CALLS ?? 600);
const AUDIENCE = 'https://a1.bench.example';
const URL_PATH = '/status';
const BOXCAR = 10;

async function timed(count, once) {
  const latencies = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await once(i);
    latencies.push(performance.now() - t0);
  }
  return latencies;
}

async function postJson(url, bearer, body, check) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!check(answer)) throw new Error(`${url} answered ${response.status} ${JSON.stringify(answer)}`);
}

export async function run({ log }) {
  const brokers = await startBrokers();
  let enforcer;
  try {
    const tenant = new BenchTenant(brokers);
    const pep = await tenant.principal('a1-pep', 'service', ['pep']);
    await tenant.grant(AUDIENCE);
    await tenant.admin.call('PUT', `/v1/peps/${pep.principal}/audiences`, { audiences: [AUDIENCE] });
    const session = await tenant.session();
    enforcer = await startBenchEnforcer(brokers, pep, AUDIENCE);
    const proofs = await mintProofs(session, {
      method: 'GET',
      url: `${AUDIENCE}${URL_PATH}`,
      accessToken: session.token,
      count: CALLS * 2,
    });
    const bearer = await new BrokerClient({ identity: pep, dpop: false }).bearerToken();
    const question = {
      subject: { type: 'session', id: session.id },
      action: { name: REQUIREMENT.action },
      resource: { type: 'bench', id: REQUIREMENT.resource },
    };
    const boxcar = {
      subject: question.subject,
      action: question.action,
      // Distinct questions (a property apart): the broker decides each, none from a repeat.
      evaluations: Array.from({ length: BOXCAR }, (_, i) => ({
        resource: { ...question.resource, properties: { n: i } },
      })),
    };
    const sides = {
      local: (i) =>
        enforcer
          .authorize({
            method: 'GET',
            url: URL_PATH,
            headers: { authorization: `DPoP ${session.token}`, dpop: proofs[i] },
            ...REQUIREMENT,
          })
          .then((d) => {
            if (!d.allow) throw new Error(`the PEP refused: ${d.code}`);
          }),
      evaluation: () =>
        postJson(`${brokers.urls[0]}/access/v1/evaluation`, bearer, question, (a) => a.decision === true),
      evaluations: () =>
        postJson(`${brokers.urls[0]}/access/v1/evaluations`, bearer, boxcar, (a) =>
          a.evaluations?.every((e) => e.decision === true),
        ),
      introspection: async () => {
        const response = await fetch(`${brokers.urls[0]}/oauth/introspect`, {
          method: 'POST',
          headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ token: session.token }).toString(),
        });
        if ((await response.json()).active !== true) throw new Error('introspection: not active');
      },
    };
    // Warm-up, then interleaved chunks (each side first in turn).
    for (const [name, once] of Object.entries(sides)) await timed(name === 'local' ? 50 : 30, once);
    const results = Object.fromEntries(Object.keys(sides).map((k) => [k, []]));
    const chunk = Math.ceil(CALLS / 10);
    let localAt = 50;
    for (let from = 0, c = 0; from < CALLS; from += chunk, c++) {
      const n = Math.min(chunk, CALLS - from);
      const order = Object.keys(sides);
      if (c % 2 === 1) order.reverse();
      for (const name of order) {
        const at = localAt;
        results[name].push(...(await timed(n, (i) => sides[name](at + i))));
        if (name === 'local') localAt += n;
      }
    }
    const p50 = (k) => percentile(results[k], 50);
    log(
      `p50: local ${ms(p50('local'))}, evaluation ${ms(p50('evaluation'))}, boxcar of ${BOXCAR} ${ms(p50('evaluations'))}, introspection ${ms(p50('introspection'))}`,
    );
    const row = (label, k) => [label, `${ms(p50(k))} / ${ms(percentile(results[k], 99))}`];
    return {
      rows: [
        row('local decision (enforcer.authorize, fresh proof): p50 / p99', 'local'),
        row('AuthZEN evaluation (POST /access/v1/evaluation, loopback): p50 / p99', 'evaluation'),
        row(`AuthZEN boxcar of ${BOXCAR} (POST /access/v1/evaluations): p50 / p99`, 'evaluations'),
        row('introspection (POST /oauth/introspect), for reference: p50 / p99', 'introspection'),
        ['samples per side', String(CALLS)],
      ],
      verdicts: [
        {
          figure: 'AuthZEN evaluation p50 ÷ local decision p50',
          value: times(p50('evaluation') / p50('local')),
        },
        {
          figure: 'AuthZEN evaluation p50 ÷ introspection p50',
          value: times(p50('evaluation') / p50('introspection')),
        },
        {
          figure: `per evaluation in a boxcar of ${BOXCAR}: p50`,
          value: ms(p50('evaluations') / BOXCAR),
        },
      ],
      notes: [
        'Each evaluation reads the subject’s sessions and the PEP’s audiences, then runs continuous evaluation (Cedar `request` and `continue`) on the covering session: a store round trip and a Cedar call per request, against none for the local PEP.',
        'Loopback HTTP/1.1 with keep-alive; the broker on durable SQLite; Bearer caller authentication (the cheapest the broker accepts).',
      ],
    };
  } finally {
    await enforcer?.close();
    await brokers.stop();
  }
}
