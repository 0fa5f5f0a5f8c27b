import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertPrivilegeIsCoherent,
  compileTicketPattern,
  PRIVILEGE_DEFAULTS,
  TICKET_PATTERN_LIMITS,
} from '../../packages/broker/src/domain/privilege.js';
import { assertRequestFitsPrivilege } from '../../packages/broker/src/domain/request.js';
import { validateGatewayConfig } from '../../packages/cli/src/gateway/config.js';
import { matchRoute } from '../../packages/cli/src/gateway/routes.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * The worst patterns known for backtracking engines, each with references chosen to make a
 * backtracking matcher explore every way of splitting them. On V8's engine `(a{0,40}){5}` and a
 * 128-character reference froze the broker for 3.6 s; 8 such groups for ~105 s. An administrator
 * saves the pattern; any requester chooses the reference.
 */
const A = (n: number) => 'a'.repeat(n);
const HOSTILE: { pattern: string; misses: string[]; hits: string[] }[] = [
  { pattern: '(a+)+$', misses: [`${A(100)}#`, `${A(127)}b`], hits: [A(127)] },
  { pattern: '(a|a)*$', misses: [`${A(100)}#`], hits: [A(127)] },
  { pattern: '(a|aa)+$', misses: [`${A(100)}#`, `${A(127)}b`], hits: [A(99)] },
  { pattern: '(a*)*b', misses: [A(127), `${A(60)}c`], hits: [`${A(60)}b`] },
  { pattern: '(x+x+)+y', misses: ['x'.repeat(127)], hits: ['xxy'] },
  { pattern: '(\\w+\\s?)+$', misses: [`${A(100)}#`], hits: ['ab_cd_ef'] },
  { pattern: '([a-zA-Z]+)*$', misses: [`${A(100)}1`], hits: ['CHG'] },
  { pattern: '^(([a-z])+.)+[A-Z]([a-z])+$', misses: [A(127), `${A(60)}#${A(60)}`], hits: ['aaa.Bcd'] },
  { pattern: '(.*a){20}', misses: [`${A(40)}b`, `${A(127)}#`], hits: [A(25)] },
  { pattern: '(.*.*.*.*.*.*.*.*.*.*)*#', misses: [A(127)], hits: [`${A(50)}#`] },
  // The bounded repetition the old guard let through.
  { pattern: '(a{0,40}){5}', misses: [`${A(127)}#`, `${A(100)}b`], hits: [A(127)] },
  { pattern: '(a{0,4}){5}'.repeat(8), misses: [`${A(127)}#`, `${A(80)}b`], hits: [A(127)] },
  { pattern: '((a{0,4}){2}){6}b', misses: [A(127)], hits: [`${A(30)}b`] },
  { pattern: '(NET|NET-?)+-[0-9]+$', misses: [`${'NET'.repeat(40)}x`], hits: ['NETNET-7'] },
];

/** Patterns refused when saved, each with what the refusal says. */
const REFUSED: { pattern: string; says: string }[] = [
  // 8 groups of the issue's `(a{0,40}){5}`: ~3,300 instructions. Linear, but not cheap enough.
  { pattern: '(a{0,40}){5}'.repeat(8), says: 'too complex' },
  { pattern: '(.*){1,32000}[bc]', says: 'not a valid RE2 regular expression (invalid repeat count' },
  { pattern: '((a{0,100}){100}){100}', says: 'not a valid RE2 regular expression' },
  { pattern: '(?=(a+))a*b\\1', says: 'backreferences are not supported' },
  { pattern: '^(?!CHG)[A-Z]+-[0-9]+$', says: 'lookahead and lookbehind are not supported' },
  { pattern: '(?<=NET)-[0-9]+', says: 'lookahead and lookbehind are not supported' },
  { pattern: `(${'a'.repeat(TICKET_PATTERN_LIMITS.maxPatternLength)})`, says: 'at most 256 characters' },
];

/**
 * Best and median of `runs` timed runs (ms), after two warm-up runs. The assertions use the best:
 * it is what the decision itself costs, while a median also holds whatever else a loaded CI machine
 * was doing (a backtracking engine's cost on these inputs is seconds in every run, best included).
 */
function timed(run: () => void, runs = 9): { best: number; median: number } {
  run();
  run();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    run();
    times.push(performance.now() - started);
  }
  times.sort((x, y) => x - y);
  return { best: times[0]!, median: times[Math.floor(runs / 2)]! };
}

const privilegeWith = (pattern: string) => ({
  name: 'firewall-admin',
  maxDurationSeconds: PRIVILEGE_DEFAULTS.maxDurationSeconds,
  tokenTtlSeconds: PRIVILEGE_DEFAULTS.tokenTtlSeconds,
  approval: PRIVILEGE_DEFAULTS.approval,
  ticket: { required: true, pattern },
});

/** The decision the broker makes on a request's ticket: nothing, or ticket_pattern_mismatch. */
function decide(pattern: string, ticket: string): string {
  try {
    assertRequestFitsPrivilege(privilegeWith(pattern), { ticket, durationSeconds: 600 });
    return 'fits';
  } catch (err) {
    return (err as { code: string }).code;
  }
}

describe('ReDoS through ticket patterns: every decision is linear-time', () => {
  it.each(HOSTILE)(
    '$pattern is saved, and each decision on it takes under 1 ms',
    ({ pattern, misses, hits }) => {
      expect(() => assertPrivilegeIsCoherent(privilegeWith(pattern))).not.toThrow();
      let total = 0;
      for (const ticket of misses) {
        const { best } = timed(() => decide(pattern, ticket));
        expect(best, `${pattern} on ${ticket.slice(0, 20)}…`).toBeLessThan(1);
        total += best;
        expect(decide(pattern, ticket)).toBe('ticket_pattern_mismatch');
      }
      for (const ticket of hits) {
        const { best } = timed(() => decide(pattern, ticket));
        expect(best, `${pattern} on ${ticket.slice(0, 20)}…`).toBeLessThan(1);
        total += best;
        expect(decide(pattern, ticket)).toBe('fits');
      }
      expect(total).toBeLessThan(2 * (misses.length + hits.length));
    },
  );

  it('holds on a fresh compile too: no pattern costs more than a few ms to compile and run cold', () => {
    // The compiled-pattern cache is bypassed by a pattern never seen before (a unique suffix).
    for (const [i, { pattern, misses }] of HOSTILE.entries()) {
      const fresh = `(?:${pattern})|cold-${i}-${Date.now()}`;
      const started = performance.now();
      const matcher = compileTicketPattern(fresh);
      expect(matcher.test(misses[0]!)).toBe(false);
      expect(performance.now() - started, pattern).toBeLessThan(250);
    }
  });

  it('never runs a reference longer than the request schemas allow', () => {
    const long = `${A(TICKET_PATTERN_LIMITS.maxReferenceLength)}a`;
    const { best } = timed(() => decide('a+', long));
    expect(best).toBeLessThan(1);
    expect(decide('a+', long)).toBe('ticket_pattern_mismatch');
  });

  it.each(REFUSED)('$pattern is refused when saved: $says', ({ pattern, says }) => {
    let code = '';
    let detail = '';
    try {
      assertPrivilegeIsCoherent(privilegeWith(pattern));
    } catch (err) {
      ({ code, detail } = err as { code: string; detail: string });
    }
    expect(code).toBe('invalid_request');
    expect(detail).toContain(says);
  });
});

describe('ReDoS through gateway routes: templates are not regular expressions', () => {
  // Route paths are matched segment by segment: regex syntax in one is literal text.
  const settings = validateGatewayConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      public_url: 'http://127.0.0.1:8701',
      upstream: 'http://127.0.0.1:9801',
      routes: [
        { method: 'GET', path: '/(a+)+$/:id', action: 'x:read', resource: 'x/{id}' },
        { method: 'GET', path: '/(a,aa)+$/(.~a)+$/:id', action: 'x:read', resource: 'x/{id}' },
        { method: 'POST', path: '/files/*', action: 'x:write', resource: 'files/{*}' },
      ],
    },
    '/tmp',
  );

  it.each([
    [`/${A(4000)}!`, 'no_route'],
    [`/${'aa/'.repeat(2000)}b`, 'no_route'],
    [`/(a+)+$/${A(4000)}`, 'matched'],
    [`/(a,aa)+$/(.~a)+$/${A(3000)}`, 'matched'],
    [`/(a+)+$/${'%61'.repeat(2000)}`, 'matched'],
    [`/(a+)+$/${'%'.repeat(2000)}`, 'refused'],
    [`/x/${'%2e'.repeat(2000)}?${A(4000)}`, 'no_route'],
  ])('decides a hostile target (%#) in under 1 ms', (target, kind) => {
    const run = () => matchRoute(settings.routes, 'GET', target);
    const { best } = timed(run);
    expect(best, target.slice(0, 40)).toBeLessThan(1);
    expect(run().kind).toBe(kind);
  });

  it('matches the literal text, not the regex it looks like', () => {
    expect(matchRoute(settings.routes, 'GET', '/aaaa/1').kind).toBe('no_route');
    expect(matchRoute(settings.routes, 'GET', '/(a+)+$/1')).toMatchObject({
      kind: 'matched',
      resource: 'x/1',
    });
  });
});

describeEachStore('ReDoS through ticket patterns, against a running broker', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  beforeAll(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
  });
  afterAll(async () => {
    await b?.close();
    await fixture.cleanup();
  });

  const count = async (table: 'access_requests' | 'privileges') =>
    Number(
      (
        await b.ctx.store.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const ask = (ticket: string) =>
    s.operator.client.call<{ id: string; state: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket,
      justification: 'rotate edge rules',
      duration: 1800,
    });

  it('answers every hostile reference with ticket_pattern_mismatch at once, and records no request', async () => {
    for (const { pattern, misses, hits } of HOSTILE) {
      // Every reference is one the request schema lets through: the pattern is what decides.
      for (const ticket of [...misses, ...hits]) expect(ticket).toMatch(/^[A-Za-z0-9][A-Za-z0-9._:#/-]*$/);
      await s.admin.call('PATCH', '/v1/privileges/firewall-admin', { ticket: { required: true, pattern } });
      for (const ticket of misses) {
        const before = await count('access_requests');
        const started = performance.now();
        const err = await refusal(ask(ticket));
        const elapsed = performance.now() - started;
        expect(err.code, `${pattern} ${err.detail}`).toBe('ticket_pattern_mismatch');
        expect(err.status).toBe(422);
        // The whole HTTP round trip, policy and store included; the match itself is timed above.
        expect(elapsed, pattern).toBeLessThan(500);
        expect(await count('access_requests')).toBe(before);
      }
      // The pattern still does its job: a reference that fits makes a request.
      const made = await ask(hits[0]!);
      expect(made.state).toBe('pending');
      await s.operator.client.call('POST', `/v1/requests/${made.id}/cancel`).catch(() => undefined);
    }
  });

  it('refuses to save a pattern RE2 cannot run, or one too big, naming the problem; nothing is saved', async () => {
    const before = await b.ctx.store.db
      .selectFrom('privileges')
      .selectAll()
      .where('name', '=', 'firewall-admin')
      .executeTakeFirstOrThrow();
    const privileges = await count('privileges');
    for (const { pattern, says } of REFUSED.filter((r) => r.pattern.length <= 256)) {
      const patched = await refusal(
        s.admin.call('PATCH', '/v1/privileges/firewall-admin', { ticket: { required: true, pattern } }),
      );
      expect(patched.code, pattern).toBe('invalid_request');
      expect(patched.detail, pattern).toContain(says);
      const created = await refusal(
        s.admin.call('POST', '/v1/privileges', {
          name: 'redos-probe',
          actions: ['x:y'],
          resources: ['x/*'],
          audiences: ['https://x.example'],
          ticket: { required: true, pattern },
        }),
      );
      expect(created.code, pattern).toBe('invalid_request');
    }
    expect(await count('privileges')).toBe(privileges);
    expect(
      await b.ctx.store.db
        .selectFrom('privileges')
        .selectAll()
        .where('name', '=', 'firewall-admin')
        .executeTakeFirstOrThrow(),
    ).toEqual(before);
  });
});
