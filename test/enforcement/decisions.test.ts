import type { DecisionRecord, DecisionReportAnswer } from '@tether-broker/protocol';
import type { AuditRecordList } from '@tether-broker/protocol/api';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { verifyAuditChain } from '../../packages/broker/src/audit/verify-chain.js';
import { BoundSession, type BrokerClient } from '../../packages/client/src/index.js';
import { type Actor, startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/** The audience the scenario's `deploy` privilege grants. */
const DEPLOY = 'https://deploy.example';

describeEachStore('decision recording (POST /v1/decisions)', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    pep = await b.principal('edge-pep', 'service', ['pep']);
    // A PEP records decisions only for the audiences an admin set for it.
    await s.admin.call('PUT', '/v1/peps/edge-pep/audiences', { audiences: [DEPLOY] });
  });
  afterEach(() => b.close());

  const report = (actor: Actor, decisions: unknown[], dropped = 0) =>
    actor.client.call<DecisionReportAnswer>('POST', '/v1/decisions', {
      audience: DEPLOY,
      decisions,
      dropped,
    });

  const decision = (overrides: Partial<DecisionRecord> = {}): DecisionRecord => ({
    at: b.clock.now() - 200,
    allow: true,
    code: 'ok',
    action: 'deploy:release',
    resource: 'app/web',
    session: null,
    ...overrides,
  });

  /** Gets each actor its broker-API token now, so that issuing it (audited) does not land among the records under test. */
  const signIn = async (...actors: Actor[]) => {
    for (const actor of actors) await actor.client.accessToken();
  };

  /** The tenant's audit head (its newest sequence number). */
  const auditHead = async (admin: BrokerClient = s.admin) =>
    (await admin.call<{ checked: number; ok: boolean }>('GET', '/v1/audit/verify')).checked;
  /** The records after `seq`, read through the API as an auditor would. */
  const auditAfter = async (seq: number, admin: BrokerClient = s.admin) =>
    (await admin.call<AuditRecordList>('GET', `/v1/audit?after=${seq}&limit=1000`)).records;

  async function liveSession(): Promise<BoundSession> {
    const request = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-7',
      justification: 'release',
      duration: 1800,
    });
    return BoundSession.activate(s.pipeline.client, request.id);
  }

  it("appends every decision to the audit chain, linked to the session's holder, ticket and request", async () => {
    const session = await liveSession();
    await signIn(pep);
    const head = await auditHead();
    const decidedAt = b.clock.now() - 200;
    const answer = await report(pep, [
      decision({ session: session.info.id, method: 'POST', path: '/v1/rules?access_token=s3cr3t#frag' }),
      decision({ session: session.info.id, allow: false, code: 'insufficient_scope', resource: 'app/db' }),
      decision({ allow: false, code: 'invalid_token', session: null, method: 'GET', path: '/health' }),
    ]);
    expect(answer).toEqual({ recorded: 3, dropped: 0 });

    const records = await auditAfter(head);
    const { requestId } = await b.ctx.store.db
      .selectFrom('sessions')
      .select('request_id as requestId')
      .where('id', '=', session.info.id)
      .executeTakeFirstOrThrow();
    expect(records).toEqual([
      expect.objectContaining({
        actor: pep.caller.principal.id,
        action: 'decision.allow',
        target: session.info.id,
        outcome: 'success',
        principal: s.pipeline.caller.principal.id,
        ticket: 'CHG-7',
        request: requestId,
        at: new Date(b.clock.now()).toISOString(),
        details: {
          code: 'ok',
          action: 'deploy:release',
          resource: 'app/web',
          decided_at: new Date(decidedAt).toISOString(),
          method: 'POST',
          // The query string may carry secrets: never recorded.
          path: '/v1/rules',
        },
      }),
      expect.objectContaining({
        action: 'decision.deny',
        target: session.info.id,
        outcome: 'refused',
        principal: s.pipeline.caller.principal.id,
        details: expect.objectContaining({ code: 'insufficient_scope', resource: 'app/db' }),
      }),
      // A denial naming no session is counted (see the flood test below): one record per code.
      expect.objectContaining({
        action: 'decision.deny',
        target: DEPLOY,
        outcome: 'refused',
        principal: null,
        ticket: null,
        request: null,
        details: expect.objectContaining({
          code: 'invalid_token',
          count: 1,
          methods: ['GET'],
          paths: ['/health'],
        }),
      }),
    ]);
    expect(JSON.stringify(records)).not.toContain('s3cr3t');
    // The session's trail (records targeting it) now holds the decisions about it.
    const trail = (await s.admin.call<AuditRecordList>('GET', `/v1/audit?request=${requestId}`)).records.map(
      (r) => r.action,
    );
    expect(trail.filter((a) => a.startsWith('decision.'))).toEqual(['decision.allow', 'decision.deny']);

    // The chain still verifies, through the API and directly.
    expect(await s.admin.call('GET', '/v1/audit/verify')).toEqual({ ok: true, checked: head + 3 });
    expect(await verifyAuditChain(b.ctx.store, b.tenant.id)).toMatchObject({ ok: true, checked: head + 3 });
  });

  it('records a session id of another tenant, or an unknown one, without linkage and without the id', async () => {
    const acmeSession = await liveSession();
    const acmeHead = await auditHead();
    const globex = await startTestBroker(b.ctx.store, { tenantName: 'globex', reuse: b });
    const globexAdmin = globex.client(globex.adminIdentity);
    const globexPep = await globex.principal('edge-pep', 'service', ['pep']);
    await globexAdmin.call('PUT', '/v1/peps/edge-pep/audiences', { audiences: [DEPLOY] });
    await globexPep.client.accessToken();
    const globexHead = await auditHead(globexAdmin);

    await report(globexPep, [
      decision({ allow: false, code: 'invalid_token', session: acmeSession.info.id }),
      decision({ allow: false, code: 'invalid_token', session: 'ses_00000000000000000000000000' }),
      decision({ allow: false, code: 'invalid_token', session: 'not even an id' }),
    ]);
    const records = await auditAfter(globexHead, globexAdmin);
    // Denials naming no session of the tenant are counted into one record (per code): all three
    // read the same, and nothing tells a foreign session from a missing one.
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      actor: globexPep.caller.principal.id,
      action: 'decision.deny',
      target: DEPLOY,
      principal: null,
      ticket: null,
      request: null,
      details: { code: 'invalid_token', count: 3, resources: ['app/web'] },
    });
    expect(JSON.stringify(records)).not.toContain(acmeSession.info.id);
    expect(JSON.stringify(records)).not.toContain(s.pipeline.caller.principal.id);
    // And acme's trail did not move.
    expect(await auditHead()).toBe(acmeHead);
    expect(await globexAdmin.call('GET', '/v1/audit/verify')).toMatchObject({ ok: true });
  });

  it('counts, records and exposes dropped decisions: a loss is never silent', async () => {
    const head = await auditHead();
    expect(await report(pep, [decision()], 7)).toEqual({ recorded: 1, dropped: 7 });
    expect(await report(pep, [decision()], 5)).toEqual({ recorded: 1, dropped: 5 });
    expect(await report(pep, [decision()], 0)).toEqual({ recorded: 1, dropped: 0 });
    const losses = (await auditAfter(head)).filter((r) => r.action === 'pep.decisions_dropped');
    expect(losses).toEqual([
      expect.objectContaining({
        actor: pep.caller.principal.id,
        target: pep.caller.principal.id,
        outcome: 'failure',
        details: { count: 7, total: 7 },
      }),
      expect.objectContaining({ details: { count: 5, total: 12 } }),
    ]);
    const row = await b.ctx.store.db
      .selectFrom('peps')
      .select(['decisions_dropped', 'last_seen_at', 'last_applied_seq'])
      .where('principal_id', '=', pep.caller.principal.id)
      .executeTakeFirstOrThrow();
    expect(row).toEqual({ decisions_dropped: 12, last_seen_at: b.clock.now(), last_applied_seq: 0 });
    const metrics = (await b.app.inject({ url: '/metrics' })).body;
    expect(metrics).toContain('tether_pep_decisions_dropped_total{tenant="acme",pep="edge-pep"} 12');
  });

  it('refuses principals without the pep role and malformed batches, and records nothing', async () => {
    const session = await liveSession();
    await signIn(pep, s.pipeline, s.operator);
    const head = await auditHead();
    for (const actor of [s.pipeline, s.operator]) {
      const err = await refusal(report(actor, [decision({ session: session.info.id })]));
      expect([err.status, err.code]).toEqual([403, 'forbidden']);
    }
    const forbidden = await refusal(
      s.admin.call('POST', '/v1/decisions', { audience: DEPLOY, decisions: [decision()], dropped: 0 }),
    );
    expect([forbidden.status, forbidden.code]).toEqual([403, 'forbidden']);

    const tooMany = Array.from({ length: 1001 }, () => decision());
    const malformed: [string, unknown][] = [
      ['no decisions', { decisions: [], dropped: 0 }],
      ['more than 1000', { decisions: tooMany, dropped: 0 }],
      ['no dropped count', { decisions: [decision()] }],
      ['a negative dropped count', { decisions: [decision()], dropped: -1 }],
      ['an unknown field', { decisions: [decision()], dropped: 0, note: 'x' }],
      ['an unknown decision field', { decisions: [{ ...decision(), principal: 'x' }], dropped: 0 }],
      ['a fractional time', { decisions: [decision({ at: 1.5 })], dropped: 0 }],
      ['a time past year 9999', { decisions: [decision({ at: 253_402_300_800_000 })], dropped: 0 }],
      ['an over-long code', { decisions: [decision({ code: 'x'.repeat(65) })], dropped: 0 }],
      ['a code that is no code', { decisions: [decision({ code: 'Not OK' })], dropped: 0 }],
      ['an empty action', { decisions: [decision({ action: '' })], dropped: 0 }],
      ['an over-long resource', { decisions: [decision({ resource: 'r'.repeat(1025) })], dropped: 0 }],
      ['an over-long session', { decisions: [decision({ session: 's'.repeat(129) })], dropped: 0 }],
      ['a method with a space', { decisions: [decision({ method: 'GET /' })], dropped: 0 }],
      ['an over-long path', { decisions: [decision({ path: `/${'p'.repeat(2048)}` })], dropped: 0 }],
      ['no allow', { decisions: [{ ...decision(), allow: undefined }], dropped: 0 }],
      ['an empty audience', { audience: '', decisions: [decision()], dropped: 0 }],
      ['an audience with a control character', { audience: 'a\nb', decisions: [decision()], dropped: 0 }],
    ];
    const noAudience = await refusal(
      pep.client.call('POST', '/v1/decisions', { decisions: [decision()], dropped: 0 }),
    );
    expect([noAudience.status, noAudience.code]).toEqual([400, 'invalid_request']);
    for (const [name, body] of malformed) {
      const err = await refusal(
        pep.client.call('POST', '/v1/decisions', { audience: DEPLOY, ...(body as object) }),
      );
      expect([err.status, err.code], name).toEqual([400, 'invalid_request']);
    }
    expect(await auditHead()).toBe(head);
    // A refused report is not hearing from the PEP either.
    const row = await b.ctx.store.db
      .selectFrom('peps')
      .selectAll()
      .where('principal_id', '=', pep.caller.principal.id)
      .executeTakeFirst();
    expect(row).toBeUndefined();
  });

  it('counts a flood of denials that name no session into one record per code and batch', async () => {
    await signIn(pep);
    const head = await auditHead();
    const flood = Array.from({ length: 1000 }, (_, i) =>
      decision({
        allow: false,
        code: i % 5 === 0 ? 'unauthenticated' : 'invalid_token',
        session: i % 2 === 0 ? null : 'ses_00000000000000000000000000',
      }),
    );
    expect(await report(pep, flood, 0)).toEqual({ recorded: 1000, dropped: 0 });
    const records = await auditAfter(head);
    expect(records).toHaveLength(2);
    const counts = Object.fromEntries(
      records.map((r) => [(r.details as { code: string }).code, (r.details as { count: number }).count]),
    );
    expect(counts).toEqual({ invalid_token: 800, unauthenticated: 200 });
    expect(await s.admin.call('GET', '/v1/audit/verify')).toMatchObject({ ok: true });
  });

  it('takes a full batch of 1000 in one transaction, and the chain verifies', async () => {
    const session = await liveSession();
    await signIn(pep);
    const head = await auditHead();
    const batch = Array.from({ length: 1000 }, (_, i) =>
      decision({
        allow: i % 2 === 0,
        code: i % 2 === 0 ? 'ok' : 'insufficient_scope',
        session: session.info.id,
      }),
    );
    expect(await report(pep, batch, 0)).toEqual({ recorded: 1000, dropped: 0 });
    expect(await s.admin.call('GET', '/v1/audit/verify')).toEqual({ ok: true, checked: head + 1000 });
    const records = await auditAfter(head);
    expect(records).toHaveLength(1000);
    // In the order sent, one after the other in the chain.
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => head + 1 + i));
    expect(records.filter((r) => r.action === 'decision.allow')).toHaveLength(500);
  }, 60_000);
});
