import type { SessionView } from '@tether-broker/protocol/api';
import { calculateJwkThumbprint } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BoundSession,
  BrokerError,
  createActorToken,
  createDpopProof,
  delegateSubSession,
  generateSessionKey,
  type SessionKey,
  type SubSessionAsk,
  withSubSession,
} from '../../packages/client/src/index.js';
import { createEnforcer, type Enforcer } from '../../packages/pep/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { pepLink, reportOver, setPepAudiences } from '../support/pep-link.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const AUDIENCE = 'https://deploy.example';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const JWT = 'urn:ietf:params:oauth:token-type:jwt';
const PEPS = 3;

/**
 * Delegated sub-sessions (issue 15 item 3, RFC 8693 delegation): a session holder hands an
 * agent a narrower piece of its session for one run. Real enforcers follow the broker's
 * revocation log over loopback; each resource call goes through one of them. Broker, PEPs and
 * clients share the broker's manual clock.
 */
describeEachStore('delegated sub-sessions', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let peps: Actor[];
  let enforcers: Enforcer[];
  afterAll(async () => {
    for (const e of enforcers ?? []) await e.close();
    await b?.app.close();
    await fixture.cleanup();
  });

  beforeAll(async () => {
    b = await startTestBroker(await fixture.open(), {
      config: { heartbeatIntervalMs: 50, limits: { delegationDepth: 2 } },
    });
    s = await setUpScenario(b);
    await s.admin.call('PATCH', '/v1/privileges/deploy', {
      audiences: [AUDIENCE],
      actions: ['deploy:release', 'deploy:status.*'],
      resources: ['app/web', 'app/web/**'],
    });
    const address = await b.app.listen({ port: 0, host: '127.0.0.1' });
    peps = [];
    enforcers = [];
    for (let i = 0; i < PEPS; i++) {
      const pep = await b.principal(`deploy-pep-${i}`, 'service', ['pep']);
      await setPepAudiences(s.admin, pep, [AUDIENCE]);
      peps.push(pep);
      enforcers.push(
        createEnforcer({
          broker: address,
          issuer: PUBLIC_URL,
          audience: AUDIENCE,
          tenant: b.tenant.id,
          publicBaseUrl: AUDIENCE,
          identity: { principal: pep.identity.principal, key: pep.identity.key },
          now: () => b.clock.now(),
          stalenessBudgetMs: 60_000,
          reconnect: { minDelayMs: 20, maxDelayMs: 200 },
          decisions: false,
        }),
      );
    }
    for (const e of enforcers) e.start();
    await eventually(() => enforcers.every((e) => e.state().fresh), 10_000, 'every PEP fresh');
  });

  /** A resource fetch through PEP `i`: `/<action>/<resource>` on the deploy service. */
  const through =
    (i: number): typeof fetch =>
    async (input, init) => {
      const url = new URL(String(input));
      const [, action, ...resource] = url.pathname.split('/');
      const decision = await enforcers[i]!.authorize({
        method: init?.method ?? 'GET',
        url: url.pathname,
        headers: Object.fromEntries(new Headers(init?.headers).entries()),
        action: action!,
        resource: resource.join('/'),
      });
      return new Response(JSON.stringify({ act: decision.claims?.act ?? null, code: decision.code }), {
        status: decision.allow ? 200 : decision.status,
      });
    };
  const call = (session: BoundSession, action: string, resource: string) =>
    session.fetch(`${AUDIENCE}/${action}/${resource}`);

  /** A live pipeline session of `deploy` (auto-approved by the scenario's policy). */
  async function parentSession(pep = 0): Promise<BoundSession> {
    const created = await s.pipeline.client.call<{ id: string; state: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-1',
      justification: 'release',
      duration: 1800,
    });
    expect(created.state).toBe('approved');
    return BoundSession.activate(s.pipeline.client, created.id, undefined, { resourceFetch: through(pep) });
  }

  const sessionCount = async () =>
    (await s.admin.call<{ sessions: SessionView[] }>('GET', '/v1/sessions')).sessions.length;

  /** The token endpoint, raw: for the attacks the SDK would never send. */
  async function exchange(form: Record<string, string>, dpop?: string) {
    const response = await b.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(dpop ? { dpop } : {}) },
      payload: new URLSearchParams(form).toString(),
    });
    return { status: response.statusCode, body: response.json() as Record<string, unknown> };
  }

  /** A delegation form as the SDK sends it, for `parent` and an actor key. */
  async function delegationForm(
    parent: BoundSession,
    actorKey: SessionKey,
    extra: Record<string, string> = {},
  ) {
    return {
      grant_type: TOKEN_EXCHANGE,
      subject_token: await parent.accessToken(),
      subject_token_type: ACCESS_TOKEN,
      actor_token: await createActorToken(actorKey, {
        brokerUrl: PUBLIC_URL,
        actor: 'agent:x',
        now: b.clock.now(),
      }),
      actor_token_type: JWT,
      authorization_details: JSON.stringify([
        { type: 'tether_privilege', actions: ['deploy:status.read'], resources: ['app/web/logs'] },
      ]),
      ...extra,
    };
  }

  const proofBy = async (key: SessionKey, accessToken: string) =>
    createDpopProof(key, {
      method: 'POST',
      url: `${PUBLIC_URL}/oauth/token`,
      accessToken,
      now: b.clock.now(),
    });

  it('hands an agent a narrower piece of the session, bound to its own key, its tokens saying who acts', async () => {
    const parent = await parentSession();
    const child = await delegateSubSession(parent, {
      actor: 'agent:release-notes',
      actions: ['deploy:status.read'],
      resources: ['app/web/logs'],
      ttl: 300,
    });
    expect(child.key.jkt).not.toBe(parent.key.jkt);
    const allowed = await call(child, 'deploy:status.read', 'app/web/logs');
    expect(allowed.status).toBe(200);
    expect((await allowed.json()).act).toEqual({ sub: 'agent:release-notes' });
    // What the parent holds but did not delegate is refused to the child.
    expect((await call(child, 'deploy:release', 'app/web')).status).toBe(403);
    expect((await call(child, 'deploy:status.read', 'app/web/secrets')).status).toBe(403);
    expect((await call(parent, 'deploy:release', 'app/web')).status).toBe(200);

    const view = await s.admin.call<SessionView>('GET', `/v1/sessions/${child.info.id}`);
    expect(view.delegation).toMatchObject({
      parent: parent.info.id,
      depth: 1,
      act: { sub: 'agent:release-notes' },
    });
    expect(view.cnf.jkt).toBe(child.key.jkt);
    expect(Date.parse(view.hard_expires_at)).toBe(b.clock.now() + 300_000);
    const trail = await s.admin.call<{
      records: { action: string; target: string; details: Record<string, unknown> }[];
    }>('GET', `/v1/audit?session=${child.info.id}`);
    expect(trail.records.find((r) => r.action === 'session.delegated')?.details).toMatchObject({
      parent: parent.info.id,
      act: { sub: 'agent:release-notes' },
    });
    // A sub-session cannot be stretched past what it was delegated for.
    await expect(
      s.pipeline.client.call('POST', `/v1/sessions/${child.info.id}/extend`, { by: 300, justification: 'x' }),
    ).rejects.toMatchObject({ code: 'invalid_request' });
    await parent.end();
  });

  it('refuses a sub-session wider or longer than its parent, or of an ended parent, and creates nothing', async () => {
    const parent = await parentSession();
    const before = await sessionCount();
    const ask = (over: Partial<SubSessionAsk>) =>
      delegateSubSession(parent, {
        actor: 'agent:greedy',
        actions: ['deploy:status.read'],
        resources: ['app/web/logs'],
        ...over,
      });
    const refusedWith = async (promise: Promise<unknown>) => {
      const err = await promise.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BrokerError);
      return (err as BrokerError).code;
    };
    // Wider actions: an action it does not hold, a pattern covering more than it holds.
    expect(await refusedWith(ask({ actions: ['deploy:rollback'] }))).toBe('invalid_authorization_details');
    expect(await refusedWith(ask({ actions: ['deploy:*'] }))).toBe('invalid_authorization_details');
    // Wider resources: outside, a path trick, a pattern wider than the parent's.
    expect(await refusedWith(ask({ resources: ['app/api'] }))).toBe('invalid_authorization_details');
    expect(await refusedWith(ask({ resources: ['app/web/../api'] }))).toBe('invalid_authorization_details');
    expect(await refusedWith(ask({ resources: ['app/**'] }))).toBe('invalid_authorization_details');
    expect(await refusedWith(ask({ resources: ['app/*'] }))).toBe('invalid_authorization_details');
    expect(await refusedWith(ask({ audience: 'https://elsewhere.example' }))).toBe(
      'invalid_authorization_details',
    );
    // Longer: past the parent's hard expiry (1800 s).
    expect(await refusedWith(ask({ ttl: 1801 }))).toBe('invalid_authorization_details');
    // A budget on an action it does not hold.
    expect(await refusedWith(ask({ callBudget: { 'deploy:release': 1 } }))).toBe(
      'invalid_authorization_details',
    );
    expect(await sessionCount()).toBe(before);
    // A narrower pattern within the parent's is fine.
    const fine = await ask({ resources: ['app/web/logs/**'], actions: ['deploy:status.*'] });
    expect((await call(fine, 'deploy:status.read', 'app/web/logs/today')).status).toBe(200);

    await parent.end();
    expect(await refusedWith(ask({}))).toBe('invalid_grant');
    expect(await sessionCount()).toBe(before + 1);
  });

  it("refuses the attacker's delegations: a stolen token without its key, a replayed or forged actor token, a forged subject token", async () => {
    const parent = await parentSession();
    const actor = await generateSessionKey();
    const thief = await generateSessionKey();
    const before = await sessionCount();
    // The parent's token, with a proof by the thief's key: holding the token is not enough.
    let form = await delegationForm(parent, actor);
    let answer = await exchange(form, await proofBy(thief, form.subject_token));
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('invalid_dpop_proof');
    // No proof at all.
    form = await delegationForm(parent, actor);
    expect((await exchange(form)).body.error).toBe('invalid_dpop_proof');
    // A proof by the parent's key for another token (ath mismatch).
    const other = await parentSession();
    form = await delegationForm(parent, actor);
    expect((await exchange(form, await proofBy(parent.key, await other.accessToken()))).body.error).toBe(
      'invalid_dpop_proof',
    );
    // The actor token replayed: accepted once, refused the second time.
    form = await delegationForm(parent, actor);
    answer = await exchange(form, await proofBy(parent.key, form.subject_token));
    expect(answer.status).toBe(200);
    answer = await exchange(form, await proofBy(parent.key, form.subject_token));
    expect(answer.body).toMatchObject({ error: 'invalid_request' });
    expect(String(answer.body.error_description)).toContain('already used');
    // An actor token whose header key is not the one that signed it.
    form = await delegationForm(parent, actor);
    const swapped = await createActorToken(
      { ...thief, publicJwk: actor.publicJwk, jkt: actor.jkt },
      { brokerUrl: PUBLIC_URL, actor: 'agent:x', now: b.clock.now() },
    );
    answer = await exchange({ ...form, actor_token: swapped }, await proofBy(parent.key, form.subject_token));
    expect(answer.body.error).toBe('invalid_request');
    // An actor token for another broker, one too old, and one made with the parent's own key.
    const foreign = await createActorToken(actor, {
      brokerUrl: 'https://other.example',
      actor: 'a',
      now: b.clock.now(),
    });
    answer = await exchange({ ...form, actor_token: foreign }, await proofBy(parent.key, form.subject_token));
    expect(answer.body.error).toBe('invalid_request');
    const old = await createActorToken(actor, {
      brokerUrl: PUBLIC_URL,
      actor: 'a',
      now: b.clock.now() - 3_600_000,
      lifetimeSeconds: 7200,
    });
    answer = await exchange({ ...form, actor_token: old }, await proofBy(parent.key, form.subject_token));
    expect(answer.body.error).toBe('invalid_request');
    const own = await createActorToken(parent.key, { brokerUrl: PUBLIC_URL, actor: 'a', now: b.clock.now() });
    answer = await exchange({ ...form, actor_token: own }, await proofBy(parent.key, form.subject_token));
    expect(answer.body.error).toBe('invalid_request');
    // A subject token the broker never signed (the attacker's own key, the parent's claims).
    const [header, payload] = form.subject_token.split('.');
    const forged = `${header}.${payload}.${Buffer.from('forged-signature').toString('base64url')}`;
    answer = await exchange({ ...form, subject_token: forged }, await proofBy(parent.key, forged));
    expect(answer.body.error).toBe('invalid_grant');
    // Only the one legitimate delegation started (plus the other parent made above).
    expect(await sessionCount()).toBe(before + 2);
    // The child's token with the parent's key: the PEP refuses it (bound to the actor's key).
    const child = await delegateSubSession(parent, {
      actor: 'agent:y',
      actions: ['deploy:status.read'],
      resources: ['app/web/logs'],
    });
    const stolen = new BoundSession(s.pipeline.client, parent.key, child.info, child.tokens, {
      resourceFetch: through(0),
    });
    expect((await call(stolen, 'deploy:status.read', 'app/web/logs')).status).toBe(401);
    expect(await calculateJwkThumbprint(child.key.publicJwk)).toBe(child.key.jkt);
    await parent.end();
    await other.end();
  });

  it('ends every sub-session, at every PEP, when the parent ends (measured), and bounds nesting', async () => {
    const parent = await parentSession();
    const child = await delegateSubSession(parent, {
      actor: 'agent:planner',
      actions: ['deploy:status.*'],
      resources: ['app/web/**'],
    });
    const grandchild = await delegateSubSession(child, {
      actor: 'tool:log-reader',
      actions: ['deploy:status.read'],
      resources: ['app/web/logs'],
    });
    // Depth 2 is the limit here: the grandchild cannot delegate further.
    await expect(
      delegateSubSession(grandchild, {
        actor: 'tool:deeper',
        actions: ['deploy:status.read'],
        resources: ['app/web/logs'],
      }),
    ).rejects.toMatchObject({ code: 'invalid_request' });
    const gcView = await s.admin.call<SessionView>('GET', `/v1/sessions/${grandchild.info.id}`);
    expect(gcView.delegation).toMatchObject({
      parent: child.info.id,
      depth: 2,
      act: { sub: 'tool:log-reader', act: { sub: 'agent:planner' } },
    });
    const onEvery = (session: BoundSession) =>
      Array.from(
        { length: PEPS },
        (_, i) =>
          new BoundSession(s.pipeline.client, session.key, session.info, session.tokens, {
            resourceFetch: through(i),
          }),
      );
    for (const held of [...onEvery(child), ...onEvery(grandchild)])
      expect((await call(held, 'deploy:status.read', 'app/web/logs')).status).toBe(200);

    const started = performance.now();
    await parent.end();
    // Every PEP refuses both descendants: poll the PEPs themselves, with fresh proofs.
    await eventually(
      async () => {
        for (const held of [...onEvery(child), ...onEvery(grandchild)]) {
          if ((await call(held, 'deploy:status.read', 'app/web/logs')).status !== 401) return false;
        }
        return true;
      },
      5000,
      'every PEP refusing the sub-sessions',
    );
    const elapsed = performance.now() - started;
    // The bound the design promises is the PEPs' staleness budget (60 s here); on loopback the
    // end reaches every PEP far inside it. Printed so a run shows the figure.
    console.info(`parent end → ${2 * PEPS} sub-session refusals at ${PEPS} PEPs: ${elapsed.toFixed(1)} ms`);
    expect(elapsed).toBeLessThan(60_000);
    for (const id of [child.info.id, grandchild.info.id]) {
      const view = await s.admin.call<SessionView>('GET', `/v1/sessions/${id}`);
      expect(view).toMatchObject({ state: 'ended', end_reason: 'parent_ended' });
    }
    // An ended child cannot mint anything either.
    await expect(
      delegateSubSession(child, {
        actor: 'agent:late',
        actions: ['deploy:status.read'],
        resources: ['app/web/logs'],
      }),
    ).rejects.toBeInstanceOf(BrokerError);
  });

  it('ends a sub-session once the PEPs report its call budget used, and the PEPs refuse it', async () => {
    const parent = await parentSession();
    const child = await delegateSubSession(parent, {
      actor: 'agent:counter',
      actions: ['deploy:status.read', 'deploy:status.list'],
      resources: ['app/web/**'],
      callBudget: { 'deploy:status.read': 3 },
    });
    const link = pepLink(b, peps[0]!);
    const allowed = (action: string) => ({
      at: b.clock.now(),
      allow: true,
      code: 'ok',
      action,
      resource: 'app/web/logs',
      session: child.info.id,
    });
    // Unbudgeted calls do not count; two of three budgeted ones leave it live.
    await reportOver(link, AUDIENCE, [
      allowed('deploy:status.list'),
      allowed('deploy:status.read'),
      allowed('deploy:status.read'),
    ]);
    let view = await s.admin.call<SessionView>('GET', `/v1/sessions/${child.info.id}`);
    expect(view.state).toBe('active');
    expect(view.delegation?.calls_made).toEqual({ 'deploy:status.read': 2 });
    expect((await call(child, 'deploy:status.read', 'app/web/logs')).status).toBe(200);
    // The third, reported by another PEP, ends it.
    await reportOver(pepLink(b, peps[1]!), AUDIENCE, [allowed('deploy:status.read')]);
    view = await s.admin.call<SessionView>('GET', `/v1/sessions/${child.info.id}`);
    expect(view).toMatchObject({ state: 'ended', end_reason: 'budget_exhausted' });
    await eventually(
      async () => (await call(child, 'deploy:status.read', 'app/web/logs')).status === 401,
      5000,
    );
    // The parent is untouched.
    expect((await call(parent, 'deploy:release', 'app/web')).status).toBe(200);
    await parent.end();
  });

  it('narrows its sub-sessions when policy narrows the parent: the PEPs refuse their older tokens', async () => {
    const parent = await parentSession();
    const child = await delegateSubSession(parent, {
      actor: 'agent:both',
      actions: ['deploy:release', 'deploy:status.read'],
      resources: ['app/web', 'app/web/logs'],
    });
    expect((await call(child, 'deploy:release', 'app/web')).status).toBe(200);
    const current = await s.admin.call<{ policies: Record<string, string> }>('GET', '/v1/policies');
    await s.admin.call('PUT', '/v1/policies', {
      policies: {
        ...current.policies,
        'freeze-releases': `forbid(principal, action == Tether::Action::"continue", resource)
          when { resource.name == "deploy" && context.entitlement_action == "deploy:release" };`,
      },
    });
    try {
      await b.ctx.reevaluation.idle();
      const view = await s.admin.call<SessionView>('GET', `/v1/sessions/${child.info.id}`);
      expect(view.state).toBe('active');
      expect(view.authorization_details[0]?.actions).toEqual(['deploy:status.read']);
      // The child's token from before is refused everywhere; a refreshed one holds the rest.
      await eventually(
        async () => (await call(child, 'deploy:status.read', 'app/web/logs')).status === 401,
        5000,
      );
      await child.refresh();
      expect((await call(child, 'deploy:status.read', 'app/web/logs')).status).toBe(200);
      expect((await call(child, 'deploy:release', 'app/web')).status).toBe(403);
    } finally {
      await s.admin.call('PUT', '/v1/policies', { policies: current.policies });
      await b.ctx.reevaluation.idle();
    }
    await parent.end();
  });

  it('withSubSession ends the sub-session when the run is done, and when it throws', async () => {
    const parent = await parentSession();
    const ask = {
      actor: 'agent:run',
      actions: ['deploy:status.read'],
      resources: ['app/web/logs'],
      ttl: 120,
    };
    let held: BoundSession | undefined;
    const result = await withSubSession(parent, ask, async (child) => {
      held = child;
      return (await call(child, 'deploy:status.read', 'app/web/logs')).status;
    });
    expect(result).toBe(200);
    let view = await s.admin.call<SessionView>('GET', `/v1/sessions/${held!.info.id}`);
    expect(view).toMatchObject({ state: 'ended', end_reason: 'completed' });
    await expect(
      withSubSession(parent, ask, async (child) => {
        held = child;
        throw new Error('the agent failed');
      }),
    ).rejects.toThrow('the agent failed');
    view = await s.admin.call<SessionView>('GET', `/v1/sessions/${held!.info.id}`);
    expect(view.state).toBe('ended');
    // The parent lives on.
    expect((await call(parent, 'deploy:release', 'app/web')).status).toBe(200);
    await parent.end();
  });
});

describe('delegation depth 0', () => {
  it('is a setting: 0 turns delegation off', async () => {
    const { delegatedDepth } = await import('../../packages/broker/src/domain/delegation.js');
    expect(() => delegatedDepth({ delegation: null }, 0)).toThrow(/turned off/);
    expect(delegatedDepth({ delegation: null }, 1)).toBe(1);
  });
});
