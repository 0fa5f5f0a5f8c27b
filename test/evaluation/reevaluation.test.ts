import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuditRecordList, SessionView } from '@tether-broker/protocol/api';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runReevaluationBatch } from '../../packages/broker/src/evaluation/jobs.js';
import { readRevocationLog } from '../../packages/broker/src/revocation/log.js';
import { BoundSession } from '../../packages/client/src/index.js';
import {
  createEnforcer,
  type Enforcer,
  RevocationMirror,
  tetherMiddleware,
} from '../../packages/pep/src/index.js';
import { PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { refusal } from '../support/refusal.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const FORBID_RELEASE = `forbid(principal, action == Tether::Action::"continue", resource)
  when { resource.name == "deploy" && context.entitlement_action == "deploy:release" };`;
const FORBID_DEPLOY = `forbid(principal, action == Tether::Action::"continue", resource)
  when { resource.name == "deploy" };`;

/**
 * Continuous evaluation of live sessions when what they stand on changes: a policy set, a
 * group membership, a principal's attributes, a privilege. Each change commits first and
 * queues a re-evaluation job; the broker's worker narrows or ends the sessions it touches.
 * Old tokens of a narrowed session are refused by a real PEP (the library, following the
 * broker's revocation stream); the next refresh carries the narrower entitlement.
 */
describeEachStore('re-evaluation of live sessions', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), { config: { heartbeatIntervalMs: 50 } });
    s = await setUpScenario(b);
    await s.admin.call('PATCH', '/v1/privileges/deploy', {
      actions: ['deploy:release', 'deploy:status.*'],
      resources: ['app/web', 'app/web/**'],
    });
  });
  afterEach(async () => {
    await b.ctx.reevaluation.idle();
    await b.close();
  });

  /** A pipeline session on `deploy` (auto-approved by the scenario's policy). */
  async function deploySession(): Promise<BoundSession> {
    const created = await s.pipeline.client.call<{ id: string; state: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-1',
      justification: 'release',
      duration: 900,
    });
    expect(created.state).toBe('approved');
    return BoundSession.activate(s.pipeline.client, created.id);
  }

  /** An operator session on `firewall-admin` (approved by an approver). */
  async function firewallSession(): Promise<BoundSession> {
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-7',
      justification: 'rotate rules',
      duration: 1800,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    return BoundSession.activate(s.operator.client, req.id);
  }

  async function replacePolicies(extra: Record<string, string>): Promise<void> {
    const current = await s.admin.call<{ policies: Record<string, string> }>('GET', '/v1/policies');
    await s.admin.call('PUT', '/v1/policies', { policies: { ...current.policies, ...extra } });
  }

  const sessionOf = (sess: BoundSession) => s.admin.call<SessionView>('GET', `/v1/sessions/${sess.info.id}`);
  const actionsOf = (token: string) =>
    (decodeJwt(token).authorization_details as { actions: string[] }[])[0]?.actions;

  async function auditOf(sessionId: string) {
    return (await s.admin.call<AuditRecordList>('GET', `/v1/audit?session=${sessionId}`)).records;
  }

  /** The PEP library's mirror, fed the tenant's whole revocation log as a PEP would have applied it. */
  async function pepMirror(): Promise<RevocationMirror> {
    const mirror = new RevocationMirror();
    for (const entry of await readRevocationLog(b.ctx.store, b.tenant.id, 0, 10_000))
      mirror.apply(entry.seq, entry.event);
    return mirror;
  }
  const mirrorQuery = (token: string) => {
    const claims = decodeJwt(token);
    return {
      sid: String(claims.sid),
      kid: String(decodeProtectedHeader(token).kid),
      iat: Number(claims.iat),
    };
  };

  describe('with a PEP in front of a resource server', () => {
    let server: Server;
    let origin: string;
    let enforcer: Enforcer;

    beforeEach(async () => {
      const pep = await b.principal('edge-pep', 'service', ['pep']);
      const address = await b.app.listen({ port: 0, host: '127.0.0.1' });
      server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      await s.admin.call('PATCH', '/v1/privileges/deploy', { audiences: [origin] });
      enforcer = createEnforcer({
        broker: address,
        issuer: PUBLIC_URL,
        audience: origin,
        tenant: b.tenant.id,
        publicBaseUrl: origin,
        identity: { principal: pep.identity.principal, key: pep.identity.key },
        now: () => b.clock.now(),
        reconnect: { minDelayMs: 20, maxDelayMs: 200 },
        decisions: false,
      });
      const guard = tetherMiddleware(enforcer, (req) => {
        const path = (req.url ?? '/').split('?')[0] ?? '/';
        if (path.startsWith('/releases/'))
          return { action: 'deploy:release', resource: `app/${path.slice('/releases/'.length)}` };
        return { action: 'deploy:status.read', resource: `app/web${path}` };
      });
      server.on('request', (req, res) => guard(req, res, () => res.writeHead(200).end('ok')));
      enforcer.start();
      await eventually(() => enforcer.state().fresh);
    });
    afterEach(async () => {
      await enforcer.close();
      await new Promise((resolve) => server.close(resolve));
    });

    it('a policy change that narrows: the old token is refused at the PEP, the next refresh carries the narrower entitlement', async () => {
      const sess = await deploySession();
      const untouched = await firewallSession();
      const oldToken = sess.tokens.accessToken;
      expect((await sess.fetch(`${origin}/releases/web`, { method: 'POST' })).status).toBe(200);
      expect((await sess.fetch(`${origin}/health`)).status).toBe(200);

      await replacePolicies({ 'freeze-releases': FORBID_RELEASE });
      await b.ctx.reevaluation.idle();

      const narrowed = await sessionOf(sess);
      expect(narrowed).toMatchObject({ state: 'active', end_reason: null });
      expect(narrowed.authorization_details[0]?.actions).toEqual(['deploy:status.*']);
      // The other session's privilege is not concerned: untouched.
      expect((await sessionOf(untouched)).authorization_details[0]?.actions).toEqual([
        'firewall:rules.write',
      ]);

      // The PEP applies session_narrowed: the token issued before the change is refused, for
      // any action, even the one the session keeps.
      const head = (await readRevocationLog(b.ctx.store, b.tenant.id, 0, 1000)).at(-1)?.seq ?? 0;
      await eventually(() => enforcer.state().position >= head);
      const refused = await sess.fetch(`${origin}/health`);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toContain("the session's entitlement has changed");

      b.clock.advance(1000);
      await sess.refresh();
      const newToken = sess.tokens.accessToken;
      expect(actionsOf(oldToken)).toEqual(['deploy:release', 'deploy:status.*']);
      expect(actionsOf(newToken)).toEqual(['deploy:status.*']);
      expect((await sess.fetch(`${origin}/health`)).status).toBe(200);
      const release = await sess.fetch(`${origin}/releases/web`, { method: 'POST' });
      expect(release.status).toBe(403);
      expect(((await release.json()) as { code: string }).code).toBe('insufficient_scope');

      const records = await auditOf(sess.info.id);
      const record = records.find((r) => r.action === 'session.narrowed');
      expect(record?.actor).toBe('system');
      expect(record?.details).toMatchObject({
        reason: 'policy_changed',
        policies: ['freeze-releases'],
        trigger: { kind: 'policy_replaced', by: b.admin.principal.id },
        removed: { actions: ['deploy:release'] },
      });
      expect(await s.admin.call('GET', '/v1/audit/verify')).toMatchObject({ ok: true });
    });

    it('a policy change that forbids: the session ends (policy_changed) and the PEP refuses it', async () => {
      const sess = await deploySession();
      expect((await sess.fetch(`${origin}/releases/web`, { method: 'POST' })).status).toBe(200);
      await replacePolicies({ 'freeze-deploy': FORBID_DEPLOY });
      await b.ctx.reevaluation.idle();

      expect(await sessionOf(sess)).toMatchObject({ state: 'ended', end_reason: 'policy_changed' });
      const head = (await readRevocationLog(b.ctx.store, b.tenant.id, 0, 1000)).at(-1)?.seq ?? 0;
      await eventually(() => enforcer.state().position >= head);
      const refused = await sess.fetch(`${origin}/releases/web`, { method: 'POST' });
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toContain('the session has ended (policy_changed)');
      expect((await refusal(sess.refresh())).code).toBe('invalid_grant');
      const ended = (await auditOf(sess.info.id)).find((r) => r.action === 'session.ended');
      expect(ended?.details).toMatchObject({
        reason: 'policy_changed',
        policies: ['freeze-deploy'],
        trigger: { kind: 'policy_replaced' },
      });
    });
  });

  it('a removed group membership ends the sessions that policy no longer permits', async () => {
    const sess = await firewallSession();
    const pipeline = await deploySession();
    await s.admin.call('DELETE', '/v1/groups/operators/members/olivia');
    await b.ctx.reevaluation.idle();
    // Only operators may request firewall-admin: olivia no longer may, so her session ends.
    expect(await sessionOf(sess)).toMatchObject({ state: 'ended', end_reason: 'policy_changed' });
    expect(await sessionOf(pipeline)).toMatchObject({ state: 'active' });
    const ended = (await auditOf(sess.info.id)).find((r) => r.action === 'session.ended');
    expect(ended?.details).toMatchObject({
      trigger: { kind: 'group_changed', principal: s.operator.caller.principal.id },
    });
    const mirror = await pepMirror();
    expect(mirror.check(mirrorQuery(sess.tokens.accessToken))).toEqual({
      kind: 'session_ended',
      reason: 'policy_changed',
    });
    expect(mirror.check(mirrorQuery(pipeline.tokens.accessToken))).toBeUndefined();
  });

  it('a principal attribute change narrows the sessions a policy ties to that attribute', async () => {
    await replacePolicies({
      'low-clearance-no-release': `forbid(principal, action == Tether::Action::"continue", resource)
        when { principal.hasTag("clearance") && principal.getTag("clearance") == "low"
          && context.entitlement_action == "deploy:release" };`,
    });
    const sess = await deploySession();
    expect(actionsOf(sess.tokens.accessToken)).toEqual(['deploy:release', 'deploy:status.*']);
    await s.admin.call('PATCH', '/v1/principals/deploy-bot', { attributes: { clearance: 'low' } });
    await b.ctx.reevaluation.idle();

    expect((await sessionOf(sess)).authorization_details[0]?.actions).toEqual(['deploy:status.*']);
    const mirror = await pepMirror();
    expect(mirror.check(mirrorQuery(sess.tokens.accessToken))).toEqual({ kind: 'session_narrowed' });
    await sess.refresh();
    expect(actionsOf(sess.tokens.accessToken)).toEqual(['deploy:status.*']);
    expect(mirror.check(mirrorQuery(sess.tokens.accessToken))).toBeUndefined();
    const narrowed = (await auditOf(sess.info.id)).find((r) => r.action === 'session.narrowed');
    expect(narrowed?.details).toMatchObject({
      reason: 'policy_changed',
      trigger: { kind: 'principal_changed', principal: s.pipeline.caller.principal.id },
    });
    // A session started now gets only what policy lets it hold, from its first token on.
    const later = await deploySession();
    expect(actionsOf(later.tokens.accessToken)).toEqual(['deploy:status.*']);
  });

  it('a narrowed privilege narrows its sessions (privilege_changed); one that grants nothing they hold ends them', async () => {
    const sess = await deploySession();
    const other = await deploySession();
    await s.admin.call('PATCH', '/v1/privileges/deploy', { actions: ['deploy:status.*'] });
    await b.ctx.reevaluation.idle();

    for (const one of [sess, other]) {
      const now = await sessionOf(one);
      expect(now.state).toBe('active');
      expect(now.authorization_details[0]).toMatchObject({
        actions: ['deploy:status.*'],
        resources: ['app/web', 'app/web/**'],
      });
    }
    const narrowed = (await auditOf(sess.info.id)).find((r) => r.action === 'session.narrowed');
    expect(narrowed?.details).toMatchObject({
      reason: 'privilege_changed',
      trigger: { kind: 'privilege_changed' },
      removed: { actions: ['deploy:release'], resources: [], audiences: [] },
    });
    const mirror = await pepMirror();
    expect(mirror.check(mirrorQuery(sess.tokens.accessToken))).toEqual({ kind: 'session_narrowed' });
    // A PEP that falls back to introspection is told the same: the old token is no longer active.
    const pep = await b.principal('edge-pep', 'service', ['pep']);
    const introspect = async (token: string) =>
      (
        await b.app.inject({
          method: 'POST',
          url: '/oauth/introspect',
          headers: {
            authorization: `Bearer ${await pep.client.bearerToken()}`,
            'content-type': 'application/x-www-form-urlencoded',
          },
          payload: new URLSearchParams({ token }).toString(),
        })
      ).json() as { active: boolean; authorization_details?: { actions: string[] }[] };
    expect(await introspect(sess.tokens.accessToken)).toEqual({ active: false });
    await sess.refresh();
    expect(actionsOf(sess.tokens.accessToken)).toEqual(['deploy:status.*']);
    expect(await introspect(sess.tokens.accessToken)).toMatchObject({
      active: true,
      authorization_details: [{ actions: ['deploy:status.*'] }],
    });

    await s.admin.call('PATCH', '/v1/privileges/deploy', { resources: ['app/api'] });
    await b.ctx.reevaluation.idle();
    expect(await sessionOf(sess)).toMatchObject({ state: 'ended', end_reason: 'privilege_changed' });
    expect(await sessionOf(other)).toMatchObject({ state: 'ended', end_reason: 'privilege_changed' });
  });

  it('a refresh that comes before the job does the same judgement, and the job then has nothing left to do', async () => {
    const sess = await deploySession();
    // The job is queued but not run yet: the worker is stopped for this broker.
    await b.ctx.reevaluation.stop();
    await replacePolicies({ 'freeze-releases': FORBID_RELEASE });
    b.clock.advance(1000);
    await sess.refresh();
    expect(actionsOf(sess.tokens.accessToken)).toEqual(['deploy:status.*']);
    const iat = Number(decodeJwt(sess.tokens.accessToken).iat);
    const mirror = await pepMirror();
    // The narrowing's cutoff refuses tokens issued before it, and not the one the refresh gave.
    expect(mirror.check(mirrorQuery(sess.tokens.accessToken))).toBeUndefined();
    expect(iat).toBeGreaterThanOrEqual(Math.floor(b.clock.now() / 1000));
    const [job] = await b.ctx.store.db
      .selectFrom('reevaluation_jobs')
      .selectAll()
      .where('state', '=', 'pending')
      .execute();
    expect(job?.trigger).toContain('policy_replaced');
    // The queued job runs later (here by hand: this broker's worker is stopped) and finds the
    // session already narrowed: nothing more to take.
    expect(await runReevaluationBatch(b.ctx, job?.id ?? '')).toBe(true);
    expect(
      await b.ctx.store.db
        .selectFrom('reevaluation_jobs')
        .selectAll()
        .where('id', '=', job?.id ?? '')
        .executeTakeFirst(),
    ).toMatchObject({
      state: 'done',
      processed: 1,
      narrowed: 0,
      ended: 0,
    });
    expect((await auditOf(sess.info.id)).filter((r) => r.action === 'session.narrowed')).toHaveLength(1);
  });
});
