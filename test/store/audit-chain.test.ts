import type { AuditRecordList, AuditVerificationView, RequestView } from '@tether-broker/protocol/api';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AuditRecord, chainNext, macRecord } from '../../packages/broker/src/audit/chain.js';
import { loadAuditKeys } from '../../packages/broker/src/audit/keys.js';
import { toAuditRecord } from '../../packages/broker/src/store/repositories/audit.js';
import type { AuditHeadRow, AuditRecordRow } from '../../packages/broker/src/store/schema.js';
import type { BrokerClient } from '../../packages/client/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/** What the scenario did, for the assertions to refer to. */
interface History {
  s: Scenario;
  approved: RequestView;
  denied: RequestView;
  cancelled: RequestView;
  auto: RequestView;
  /** Clock readings between the scenario's phases. */
  phase2: number;
  phase3: number;
}

const FORGED_ID = 'aud_zzzzzzzzzzzzzzzzzzzzzzzzzz'; // sorts after every real id with the same seq

describeEachStore('audit chain', (fixture) => {
  let b: TestBroker;
  let h: History;
  let admin: BrokerClient;
  afterAll(() => fixture.cleanup());

  /** A realistic history written through the API: records, policies, requests, reviews. */
  async function writeHistory(): Promise<History> {
    const s = await setUpScenario(b);
    const ask = (ticket: string) =>
      s.operator.client.call<RequestView>('POST', '/v1/requests', {
        privilege: 'firewall-admin',
        ticket,
        justification: `change under ${ticket}`,
        duration: 1800,
      });
    b.clock.advance(60_000);
    const approved = await ask('NET-42');
    // Oscar is no approver: a refused review is recorded too.
    await s.outsider.client.call('POST', `/v1/requests/${approved.id}/approve`).catch(() => undefined);
    await s.approvers[0]!.client.call('POST', `/v1/requests/${approved.id}/approve`, { comment: 'ok' });
    b.clock.advance(60_000);
    const phase2 = b.clock.now();
    const denied = await ask('NET-43');
    await s.approvers[1]!.client.call('POST', `/v1/requests/${denied.id}/deny`, { comment: 'not now' });
    const cancelled = await ask('CHG-7');
    await s.operator.client.call('POST', `/v1/requests/${cancelled.id}/cancel`, { reason: 'done' });
    b.clock.advance(60_000);
    const phase3 = b.clock.now();
    const auto = await s.pipeline.client.call<RequestView>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-9',
      justification: 'release 1.2.3',
      duration: 900,
    });
    await s.admin.call('PATCH', '/v1/privileges/deploy', { max_duration: 1800 });
    await s.admin.call('PATCH', '/v1/principals/oscar', { attributes: { team: 'web' } });
    return { s, approved, denied, cancelled, auto, phase2, phase3 };
  }

  // The history is written once; each test tampers with it and the chain is put back after.
  let pristine: { records: AuditRecordRow[]; head: AuditHeadRow };
  beforeAll(async () => {
    b = await startTestBroker(await fixture.open());
    h = await writeHistory();
    admin = h.s.admin;
    await admin.call('GET', '/v1/me'); // the admin's token is cached: verifying appends nothing
    pristine = {
      records: await rows(),
      head: await db()
        .selectFrom('audit_heads')
        .selectAll()
        .where('tenant_id', '=', b.tenant.id)
        .executeTakeFirstOrThrow(),
    };
  });
  afterEach(async () => {
    await db().deleteFrom('audit_records').where('tenant_id', '=', b.tenant.id).execute();
    await db().insertInto('audit_records').values(pristine.records).execute();
    await db().deleteFrom('audit_heads').where('tenant_id', '=', b.tenant.id).execute();
    await db().insertInto('audit_heads').values(pristine.head).execute();
    // Verifying checkpoints the chain; checkpoints of records appended by a test go with them.
    await db()
      .deleteFrom('audit_checkpoints')
      .where('tenant_id', '=', b.tenant.id)
      .where('seq', '>', pristine.head.seq)
      .execute();
  });

  /**
   * The chain key. These tests check the chain's structure against the strongest writer, one
   * who holds the KEK and recomputes MACs; test/security/audit-rewrite.test.ts is the writer without it.
   */
  const chainKey = () => loadAuditKeys(b.ctx.kek).chain;

  const db = () => b.ctx.store.db;
  const rows = async (): Promise<AuditRecordRow[]> =>
    db()
      .selectFrom('audit_records')
      .selectAll()
      .where('tenant_id', '=', b.tenant.id)
      .orderBy('seq')
      .execute();
  const record = async (seq: number): Promise<AuditRecord> => {
    const row = await db()
      .selectFrom('audit_records')
      .selectAll()
      .where('tenant_id', '=', b.tenant.id)
      .where('seq', '=', seq)
      .executeTakeFirstOrThrow();
    return toAuditRecord(row);
  };
  const verify = () => admin.call<AuditVerificationView>('GET', '/v1/audit/verify');
  const list = async (query = '') =>
    (await admin.call<AuditRecordList>('GET', `/v1/audit?limit=1000${query}`)).records;
  const insert = (r: AuditRecord) =>
    db()
      .insertInto('audit_records')
      .values({
        tenant_id: r.tenantId,
        seq: r.seq,
        id: r.id,
        at: r.at,
        actor: r.actor,
        action: r.action,
        target: r.target,
        outcome: r.outcome,
        request_id: r.requestId,
        ticket: r.ticket,
        principal_id: r.principalId,
        policies: JSON.stringify(r.policies),
        details: JSON.stringify(r.details),
        prev_hash: r.prevHash,
        hash: r.hash,
        mac_version: r.macVersion,
      })
      .execute();
  const setSeq = (id: string, seq: number) =>
    db()
      .updateTable('audit_records')
      .set({ seq })
      .where('tenant_id', '=', b.tenant.id)
      .where('id', '=', id)
      .execute();

  /** The chain is long enough to have a middle; the admin's token is cached, so verifying appends nothing. */
  async function chainLength(): Promise<number> {
    const n = (await rows()).length;
    expect(n).toBeGreaterThan(20);
    return n;
  }

  describe('verification', () => {
    it('verifies an untouched chain and counts every record', async () => {
      const n = await chainLength();
      expect(await verify()).toEqual({ ok: true, checked: n });
      const head = await db()
        .selectFrom('audit_heads')
        .selectAll()
        .where('tenant_id', '=', b.tenant.id)
        .executeTakeFirstOrThrow();
      const last = await record(n);
      expect(head).toMatchObject({ seq: n, hash: last.hash });
    });

    it('finds a field edited in the middle of the chain', async () => {
      const n = await chainLength();
      const m = Math.floor(n / 2);
      const victim = await record(m);
      await db()
        .updateTable('audit_records')
        .set({ outcome: victim.outcome === 'success' ? 'refused' : 'success' })
        .where('tenant_id', '=', b.tenant.id)
        .where('seq', '=', m)
        .execute();
      expect(await verify()).toEqual({
        ok: false,
        checked: m - 1,
        first_bad: {
          seq: m,
          id: victim.id,
          fault: 'edited',
          message: `record ${m} was modified after it was written`,
        },
      });
    });

    it('finds an edit whose own hash was recomputed, at the next record, whose link breaks', async () => {
      const n = await chainLength();
      const m = Math.floor(n / 2);
      const victim = await record(m);
      const { hash, ...unsigned } = { ...victim, actor: 'prn_someone_else' };
      void hash;
      await db()
        .updateTable('audit_records')
        .set({ actor: unsigned.actor, hash: macRecord(unsigned, chainKey()) })
        .where('tenant_id', '=', b.tenant.id)
        .where('seq', '=', m)
        .execute();
      const next = await record(m + 1);
      const result = await verify();
      expect(result).toMatchObject({
        ok: false,
        checked: m,
        first_bad: { seq: m + 1, id: next.id, fault: 'broken_link' },
      });
    });

    it('finds a deleted middle record as a gap before the record that followed it', async () => {
      const n = await chainLength();
      const m = Math.floor(n / 2);
      await db()
        .deleteFrom('audit_records')
        .where('tenant_id', '=', b.tenant.id)
        .where('seq', '=', m)
        .execute();
      const next = await record(m + 1);
      expect(await verify()).toMatchObject({
        ok: false,
        checked: m - 1,
        first_bad: { seq: m + 1, id: next.id, fault: 'sequence_gap' },
      });
    });

    it('finds the last records deleted, through the head the store keeps', async () => {
      const n = await chainLength();
      await db()
        .deleteFrom('audit_records')
        .where('tenant_id', '=', b.tenant.id)
        .where('seq', '>', n - 2)
        .execute();
      expect(await verify()).toEqual({
        ok: false,
        checked: n - 2,
        first_bad: {
          seq: n - 1,
          id: '',
          fault: 'truncated',
          message: `records ${n - 1}..${n} are missing at the end of the chain`,
        },
      });
    });

    it('finds the last record deleted together with the head', async () => {
      const n = await chainLength();
      await db()
        .deleteFrom('audit_records')
        .where('tenant_id', '=', b.tenant.id)
        .where('seq', '=', n)
        .execute();
      await db().deleteFrom('audit_heads').where('tenant_id', '=', b.tenant.id).execute();
      expect(await verify()).toMatchObject({
        ok: false,
        checked: n - 1,
        first_bad: { seq: n, id: '', fault: 'truncated' },
      });
    });

    it('finds a forged record inserted with a duplicate seq, even correctly hashed and linked', async () => {
      const n = await chainLength();
      const m = Math.floor(n / 2);
      const before = await record(m - 1);
      const forged = chainNext(
        before,
        {
          tenantId: b.tenant.id,
          id: FORGED_ID,
          at: before.at,
          entry: {
            actor: h.s.operator.caller.principal.id,
            action: 'request.approved',
            target: h.denied.id,
            outcome: 'success',
            requestId: h.denied.id,
          },
        },
        chainKey(),
      );
      expect(forged.seq).toBe(m);
      await insert(forged);
      expect(await verify()).toMatchObject({
        ok: false,
        checked: m,
        first_bad: { seq: m, id: FORGED_ID, fault: 'sequence_duplicate' },
      });
    });

    it('finds a record appended at the end without moving the head', async () => {
      const n = await chainLength();
      const last = await record(n);
      const forged = chainNext(
        last,
        {
          tenantId: b.tenant.id,
          id: FORGED_ID,
          at: last.at + 1,
          entry: {
            actor: h.s.approvers[0]!.caller.principal.id,
            action: 'request.approved',
            target: h.denied.id,
            outcome: 'success',
            requestId: h.denied.id,
          },
        },
        chainKey(),
      );
      await insert(forged);
      expect(await verify()).toMatchObject({
        ok: false,
        checked: n,
        first_bad: { seq: n + 1, id: FORGED_ID, fault: 'broken_link' },
      });
    });

    it('finds two records swapped (their seq values exchanged)', async () => {
      const n = await chainLength();
      const [i, j] = [Math.floor(n / 3), Math.floor((2 * n) / 3)];
      const [a, c] = [await record(i), await record(j)];
      await setSeq(a.id, j);
      await setSeq(c.id, i);
      expect(await verify()).toMatchObject({
        ok: false,
        checked: i - 1,
        first_bad: { seq: i, id: c.id, fault: 'edited' },
      });
    });

    it('finds the last record rewritten and rehashed, because the head remembers the real one', async () => {
      const n = await chainLength();
      const last = await record(n);
      const { hash, ...unsigned } = { ...last, outcome: 'refused' };
      void hash;
      await db()
        .updateTable('audit_records')
        .set({ outcome: 'refused', hash: macRecord(unsigned, chainKey()) })
        .where('tenant_id', '=', b.tenant.id)
        .where('seq', '=', n)
        .execute();
      // Without a checkpoint of the last record, the head is what remembers it.
      await db().deleteFrom('audit_checkpoints').where('tenant_id', '=', b.tenant.id).execute();
      expect(await verify()).toMatchObject({
        ok: false,
        checked: n,
        first_bad: { seq: n, id: last.id, fault: 'broken_link' },
      });
    });

    it('finds the last record rewritten, rehashed and the head moved, because a checkpoint saw the real one', async () => {
      const n = await chainLength();
      expect(await verify()).toMatchObject({ ok: true }); // checkpoints record n
      const last = await record(n);
      const { hash, ...unsigned } = { ...last, outcome: 'refused' };
      void hash;
      const forgedHash = macRecord(unsigned, chainKey());
      await db()
        .updateTable('audit_records')
        .set({ outcome: 'refused', hash: forgedHash })
        .where('tenant_id', '=', b.tenant.id)
        .where('seq', '=', n)
        .execute();
      await db()
        .updateTable('audit_heads')
        .set({ hash: forgedHash })
        .where('tenant_id', '=', b.tenant.id)
        .execute();
      expect(await verify()).toMatchObject({
        ok: false,
        checked: n - 1,
        first_bad: { seq: n, id: last.id, fault: 'checkpoint_mismatch' },
      });
    });

    it("leaves another tenant's chain out of it: tampering with one does not fail the other", async () => {
      const other = await startTestBroker(b.ctx.store, { tenantName: 'other', reuse: b });
      const otherAdmin = other.client(other.adminIdentity);
      expect(await otherAdmin.call<AuditVerificationView>('GET', '/v1/audit/verify')).toMatchObject({
        ok: true,
      });
      await db()
        .deleteFrom('audit_records')
        .where('tenant_id', '=', b.tenant.id)
        .where('seq', '=', 3)
        .execute();
      expect((await verify()).ok).toBe(false);
      expect(await otherAdmin.call<AuditVerificationView>('GET', '/v1/audit/verify')).toMatchObject({
        ok: true,
      });
    });

    it('is not fooled by records appended while it reads the chain', async () => {
      // Logins append to the chain while verifications run back to back.
      let done = false;
      const logins = Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          b.client(h.s.approvers[i % h.s.approvers.length]!.identity).call('GET', '/v1/me'),
        ),
      ).finally(() => {
        done = true;
      });
      const results: AuditVerificationView[] = [];
      const checking = (async () => {
        while (!done) results.push(await verify());
      })();
      await Promise.all([logins, checking]);
      expect(results.length).toBeGreaterThan(0);
      for (const r of results) expect(r).toMatchObject({ ok: true });
      expect(await verify()).toEqual({ ok: true, checked: (await rows()).length });
    });
  });

  describe('records and filters', () => {
    it('has a record of every state change the scenario made', async () => {
      const all = await list();
      const actions = new Set(all.map((r) => r.action));
      for (const action of [
        'tenant.created',
        'principal.created',
        'group.created',
        'group.member.added',
        'privilege.created',
        'privilege.updated',
        'principal.updated',
        'policy.replaced',
        'request.created',
        'request.review.approve',
        'request.approved',
        'request.review.deny',
        'request.denied',
        'request.cancelled',
        'auth.token_issued',
      ]) {
        expect(actions, action).toContain(action);
      }
      const ok = all.filter((r) => r.outcome === 'success');
      const targetsOf = (action: string) => ok.filter((r) => r.action === action).map((r) => r.target);
      // One principal.created per principal, the admin's included.
      const principals = [
        b.admin,
        ...[h.s.operator, h.s.outsider, h.s.pipeline, ...h.s.approvers].map((a) => a.caller),
      ];
      expect(targetsOf('principal.created').sort()).toEqual(principals.map((c) => c.principal.id).sort());
      expect(ok.filter((r) => r.action === 'group.created').map((r) => r.details.name)).toEqual([
        'operators',
        'approvers',
      ]);
      // olivia in operators; three approvers and olivia in approvers.
      expect(targetsOf('group.member.added')).toHaveLength(5);
      expect(ok.filter((r) => r.action === 'privilege.created').map((r) => r.details.name)).toEqual([
        'firewall-admin',
        'deploy',
      ]);
      expect(ok.filter((r) => r.action === 'policy.replaced')).toHaveLength(1);
      expect(targetsOf('request.created').sort()).toEqual(
        [h.approved.id, h.denied.id, h.cancelled.id, h.auto.id].sort(),
      );
      expect(targetsOf('request.approved').sort()).toEqual([h.approved.id, h.auto.id].sort());
      expect(targetsOf('request.denied')).toEqual([h.denied.id]);
      expect(targetsOf('request.cancelled')).toEqual([h.cancelled.id]);
      const autoApproval = ok.find((r) => r.action === 'request.approved' && r.request === h.auto.id);
      expect(autoApproval).toMatchObject({ actor: 'policy', policies: ['pipeline-auto-deploy'] });
      // Everyone who called the API logged in once (tokens are cached), and each login is recorded.
      const callers = [
        b.admin,
        ...[h.s.operator, h.s.outsider, h.s.pipeline, h.s.approvers[0]!, h.s.approvers[1]!].map(
          (a) => a.caller,
        ),
      ];
      expect(targetsOf('auth.token_issued').sort()).toEqual(callers.map((c) => c.principal.id).sort());
      const refusedReview = all.find((r) => r.action === 'request.review.approve' && r.outcome === 'refused');
      expect(refusedReview).toMatchObject({
        actor: h.s.outsider.caller.principal.id,
        request: h.approved.id,
      });
      // The chain as listed is the chain as verified: consecutive, linked.
      all.forEach((r, i) => {
        expect(r.seq).toBe(i + 1);
        if (i > 0) expect(r.prev_hash).toBe(all[i - 1]!.hash);
      });
    });

    it('filters by request, ticket and principal', async () => {
      const all = await list();
      const byRequest = await list(`&request=${h.approved.id}`);
      expect(byRequest.map((r) => [r.action, r.outcome])).toEqual([
        ['request.created', 'success'],
        ['request.review.approve', 'refused'],
        ['request.review.approve', 'success'],
        ['request.approved', 'success'],
      ]);
      expect(byRequest.every((r) => r.request === h.approved.id)).toBe(true);

      const byTicket = await list('&ticket=NET-43');
      expect(byTicket.map((r) => r.action)).toEqual([
        'request.created',
        'request.review.deny',
        'request.denied',
      ]);
      expect(await list('&ticket=NOPE-1')).toEqual([]);

      const olivia = h.s.operator.caller.principal;
      const byName = await list('&principal=olivia');
      const byId = await list(`&principal=${olivia.id}`);
      expect(byId).toEqual(byName);
      expect(byName.map((r) => r.id)).toEqual(
        all.filter((r) => r.principal === olivia.id || r.actor === olivia.id).map((r) => r.id),
      );
      expect(byName.map((r) => r.action)).toEqual(
        expect.arrayContaining([
          'principal.created',
          'group.member.added',
          'auth.token_issued',
          'request.cancelled',
        ]),
      );
    });

    it('filters by time (since inclusive, until exclusive), by position and by count', async () => {
      const all = await list();
      const iso = (ms: number) => new Date(ms).toISOString();
      const since = await list(`&since=${iso(h.phase2)}`);
      expect(since.map((r) => r.id)).toEqual(
        all.filter((r) => Date.parse(r.at) >= h.phase2).map((r) => r.id),
      );
      expect(since[0]!.action).toBe('request.created');
      expect(since[0]!.request).toBe(h.denied.id);
      const window = await list(`&since=${iso(h.phase2)}&until=${iso(h.phase3)}`);
      expect(window.map((r) => [r.action, r.request])).toEqual([
        ['request.created', h.denied.id],
        ['auth.token_issued', null], // the second approver's first call
        ['request.review.deny', h.denied.id],
        ['request.denied', h.denied.id],
        ['request.created', h.cancelled.id],
        ['request.cancelled', h.cancelled.id],
      ]);
      const until = await list(`&until=${iso(h.phase2)}`);
      expect([...until, ...since].map((r) => r.id)).toEqual(all.map((r) => r.id));

      const after = await list('&after=10');
      expect(after.map((r) => r.seq)).toEqual(all.filter((r) => r.seq > 10).map((r) => r.seq));
      const page = (await admin.call<AuditRecordList>('GET', '/v1/audit?after=10&limit=5')).records;
      expect(page.map((r) => r.seq)).toEqual([11, 12, 13, 14, 15]);
      const firstPage = (await admin.call<AuditRecordList>('GET', '/v1/audit?limit=3')).records;
      expect(firstPage.map((r) => r.seq)).toEqual([1, 2, 3]);
      expect(await list(`&after=${all.length}`)).toEqual([]);
    });
  });
});
