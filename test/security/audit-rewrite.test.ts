import { createHmac, createSecretKey, randomBytes } from 'node:crypto';
import type { AuditVerificationView } from '@tether-broker/protocol/api';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type AuditRecord,
  GENESIS_HASH,
  hashRecord,
  macRecord,
  type RecordFields,
} from '../../packages/broker/src/audit/chain.js';
import { checkpointOnSchedule } from '../../packages/broker/src/audit/checkpoints.js';
import { rotateSigningKey } from '../../packages/broker/src/operations/signing-keys.js';
import { toAuditRecord } from '../../packages/broker/src/store/repositories/audit.js';
import type { BrokerClient } from '../../packages/client/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * A database writer without the KEK rewrites an approval and recomputes every hash after it, as
 * one could before the chain was keyed (issue 9, item 8). Each rewrite must be named by
 * `GET /v1/audit/verify` at the first record it touched.
 */
describeEachStore('audit chain rewritten by a database writer', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let admin: BrokerClient;
  let approval: AuditRecord;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    admin = s.admin;
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-42',
      justification: 'edge rules',
      duration: 1800,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`, { comment: 'ok' });
    // More history after the approval, so that a rewrite has records to recompute.
    await s.admin.call('PATCH', '/v1/principals/oscar', { attributes: { team: 'web' } });
    await s.admin.call('PATCH', '/v1/privileges/deploy', { max_duration: 1800 });
    approval = (await chain()).find((r) => r.action === 'request.approved')!;
    expect(approval.macVersion).toBe(1);
  });

  const db = () => b.ctx.store.db;
  const verify = () => admin.call<AuditVerificationView>('GET', '/v1/audit/verify');
  const chain = async (): Promise<AuditRecord[]> =>
    (
      await db()
        .selectFrom('audit_records')
        .selectAll()
        .where('tenant_id', '=', b.tenant.id)
        .orderBy('seq')
        .execute()
    ).map(toAuditRecord);
  const checkpoints = () =>
    db()
      .selectFrom('audit_checkpoints')
      .selectAll()
      .where('tenant_id', '=', b.tenant.id)
      .orderBy('seq')
      .execute();
  const head = () =>
    db().selectFrom('audit_heads').selectAll().where('tenant_id', '=', b.tenant.id).executeTakeFirstOrThrow();

  /**
   * The attack: the approval now names the outsider as its approver; every later record is
   * recomputed with `hash` (and relinked), the head moved to the new end. Written row by row in
   * SQL, as a database writer would.
   */
  async function rewriteFromApproval(hash: (fields: RecordFields) => string, macVersion: number) {
    const records = await chain();
    let prev = records.find((r) => r.seq === approval.seq - 1)?.hash ?? GENESIS_HASH;
    for (const r of records.filter((x) => x.seq >= approval.seq)) {
      const fields: RecordFields = {
        ...r,
        prevHash: prev,
        actor: r.seq === approval.seq ? s.outsider.caller.principal.id : r.actor,
      };
      prev = hash(fields);
      await db()
        .updateTable('audit_records')
        .set({ actor: fields.actor, prev_hash: fields.prevHash, hash: prev, mac_version: macVersion })
        .where('tenant_id', '=', b.tenant.id)
        .where('id', '=', r.id)
        .execute();
    }
    await db().updateTable('audit_heads').set({ hash: prev }).where('tenant_id', '=', b.tenant.id).execute();
  }

  async function expectNamed(fault: string) {
    const before = await checkpoints();
    expect(await verify()).toMatchObject({
      ok: false,
      checked: approval.seq - 1,
      first_bad: { seq: approval.seq, id: approval.id, fault },
    });
    // A failed verification vouches for nothing: no checkpoint is written.
    expect(await checkpoints()).toEqual(before);
  }

  it('the untouched chain verifies, and every verification checkpoints the end it verified', async () => {
    const n = (await chain()).length;
    expect(await verify()).toEqual({ ok: true, checked: n });
    expect((await checkpoints()).map((c) => [c.seq, c.kind])).toEqual([[n, 'verify']]);
  });

  it('names the approval rewritten with the old unkeyed algorithm (every later hash recomputed)', async () => {
    await rewriteFromApproval(hashRecord, 0);
    await expectNamed('unkeyed');
  });

  it('names the approval rewritten with the old algorithm but still labelled keyed', async () => {
    await rewriteFromApproval(hashRecord, 1);
    await expectNamed('edited');
  });

  it('names the approval rewritten with an HMAC under a wrong key (every later MAC recomputed)', async () => {
    const wrong = createSecretKey(randomBytes(32));
    await rewriteFromApproval((f) => macRecord(f, wrong), 1);
    await expectNamed('edited');
  });

  it('names the approval rewritten with an HMAC keyed with the KEK itself (the chain key is derived, not the KEK)', async () => {
    const kekAsKey = createSecretKey(Buffer.from(b.ctx.kek.key));
    await rewriteFromApproval((f) => macRecord(f, kekAsKey), 1);
    await expectNamed('edited');
  });

  it('refuses a forged checkpoint meant to bless a rewritten chain', async () => {
    await rewriteFromApproval(hashRecord, 1);
    const h = await head();
    await db()
      .insertInto('audit_checkpoints')
      .values({
        tenant_id: b.tenant.id,
        seq: h.seq,
        hash: h.hash,
        at: b.clock.now(),
        kind: 'verify',
        key_id: h.mac_key!,
        tag: createHmac('sha256', randomBytes(32)).update('x').digest('hex'),
      })
      .execute();
    expect(await verify()).toMatchObject({
      ok: false,
      first_bad: { seq: h.seq, fault: 'checkpoint_forged' },
    });
  });

  describe('truncation', () => {
    /** Deletes the records after `keep` and moves the head back to it: a consistent, shorter chain. */
    async function truncateAfter(keep: number) {
      const records = await chain();
      await db()
        .deleteFrom('audit_records')
        .where('tenant_id', '=', b.tenant.id)
        .where('seq', '>', keep)
        .execute();
      const last = records.find((r) => r.seq === keep)!;
      await db()
        .updateTable('audit_heads')
        .set({ seq: keep, hash: last.hash })
        .where('tenant_id', '=', b.tenant.id)
        .execute();
    }

    it('finds the tail deleted and the head moved back, when a checkpoint saw the tail', async () => {
      const n = (await chain()).length;
      expect(await verify()).toMatchObject({ ok: true }); // checkpoints record n
      await truncateAfter(n - 3);
      expect(await verify()).toEqual({
        ok: false,
        checked: n - 3,
        first_bad: {
          seq: n - 2,
          id: '',
          fault: 'truncated',
          message: `records ${n - 2}..${n} are missing at the end of the chain (a checkpoint saw record ${n})`,
        },
      });
    });

    it('cannot see records deleted after the last checkpoint (the known limit); the timer checkpoint narrows it', async () => {
      const n = (await chain()).length;
      expect(await verify()).toMatchObject({ ok: true });
      await s.admin.call('PATCH', '/v1/principals/oscar', { attributes: { team: 'db' } });
      const m = (await chain()).length;
      expect(m).toBeGreaterThan(n);
      // Records written after the last checkpoint can be dropped unseen...
      await truncateAfter(n);
      expect(await verify()).toMatchObject({ ok: true, checked: n });
      // ...unless the timer checkpointed them first.
      await s.admin.call('PATCH', '/v1/principals/oscar', { attributes: { team: 'ops' } });
      const k = (await chain()).length;
      b.clock.advance(b.ctx.config.auditCheckpointIntervalSeconds * 1000);
      expect(await checkpointOnSchedule(b.ctx, b.clock.now())).toBe(1);
      await truncateAfter(n);
      expect(await verify()).toMatchObject({
        ok: false,
        checked: n,
        first_bad: { seq: n + 1, fault: 'truncated' },
      });
      expect((await checkpoints()).at(-1)).toMatchObject({ seq: k, kind: 'timer' });
    });
  });

  describe('chains written before the chain was keyed', () => {
    /** Turns the tenant's chain into what a store from before migration 0011 holds: unkeyed. */
    async function makeLegacy(): Promise<number> {
      const records = await chain();
      let prev = GENESIS_HASH;
      for (const r of records) {
        const hash = hashRecord({ ...r, prevHash: prev });
        await db()
          .updateTable('audit_records')
          .set({ prev_hash: prev, hash, mac_version: 0 })
          .where('tenant_id', '=', b.tenant.id)
          .where('id', '=', r.id)
          .execute();
        prev = hash;
      }
      await db()
        .updateTable('audit_heads')
        .set({ hash: prev, mac_key: null })
        .where('tenant_id', '=', b.tenant.id)
        .execute();
      await db().deleteFrom('audit_checkpoints').execute();
      return records.length;
    }

    /** The broker starts again on the same store and KEK (the upgrade). */
    const restart = () =>
      startTestBroker(b.ctx.store, { tenantName: 'upgraded', config: { dataDir: b.ctx.config.dataDir } });

    it('refuses a wholly unkeyed chain no seal covers (a downgrade) until the broker seals it at start', async () => {
      const n = await makeLegacy();
      expect(await verify()).toMatchObject({
        ok: false,
        checked: 0,
        first_bad: { seq: 1, fault: 'unkeyed' },
      });
      await restart();
      // Sealed: a legacy_seal checkpoint at the old end, then keyed records from there on.
      expect((await checkpoints()).map((c) => [c.seq, c.kind])).toEqual([[n, 'legacy_seal']]);
      const keyed = (await chain()).filter((r) => r.seq > n);
      expect(keyed[0]).toMatchObject({
        action: 'audit.chain_keyed',
        macVersion: 1,
        details: { unkeyed_records: n },
      });
      expect(keyed.every((r) => r.macVersion === 1)).toBe(true);
      expect(await verify()).toMatchObject({ ok: true });
    });

    it('finds the sealed unkeyed prefix rewritten and rehashed: the seal no longer matches', async () => {
      const n = await makeLegacy();
      await restart();
      // The approval, rewritten; every unkeyed hash after it recomputed, up to the sealed end.
      const records = await chain();
      let prev = records.find((r) => r.seq === approval.seq - 1)!.hash;
      for (const r of records.filter((x) => x.seq >= approval.seq && x.seq <= n)) {
        const actor = r.seq === approval.seq ? s.outsider.caller.principal.id : r.actor;
        const hash = hashRecord({ ...r, actor, prevHash: prev });
        await db()
          .updateTable('audit_records')
          .set({ actor, prev_hash: prev, hash })
          .where('tenant_id', '=', b.tenant.id)
          .where('id', '=', r.id)
          .execute();
        prev = hash;
      }
      expect(await verify()).toMatchObject({
        ok: false,
        checked: n - 1,
        first_bad: { seq: n, fault: 'checkpoint_mismatch' },
      });
    });
  });

  describe('key and settings changes are audit records', () => {
    const actions = async () => (await chain()).map((r) => r.action);

    it('records a signing-key rotation and retirement in the tenant chain', async () => {
      const rotated = await rotateSigningKey(b.ctx.store, b.ctx.kek, b.clock, 600);
      const rotation = (await chain()).find((r) => r.action === 'signing_key.rotated');
      expect(rotation).toMatchObject({
        actor: 'broker',
        target: rotated.kid,
        details: { retiring: rotated.retiring },
      });
      b.clock.advance(601_000);
      const { retireExpiredKeys } = await import('../../packages/broker/src/operations/signing-keys.js');
      await retireExpiredKeys(b.ctx.store, b.clock.now());
      expect(await actions()).toContain('signing_key.retired');
      expect(await verify()).toMatchObject({ ok: true });
    });

    it('records a start with changed settings, with what changed and no secret', async () => {
      const before = await actions();
      expect(before).not.toContain('broker.settings_changed'); // the first start had no tenant yet
      await startTestBroker(b.ctx.store, {
        tenantName: 'restarted',
        config: { dataDir: b.ctx.config.dataDir, apiTokenTtlSeconds: 120, port: 9999 },
      });
      const changes = (await chain()).filter((r) => r.action === 'broker.settings_changed');
      expect(changes).toHaveLength(1);
      expect(changes[0]!.details.changed).toMatchObject({ apiTokenTtlSeconds: { from: 600, to: 120 } });
      // Where a replica listens is not a change of what the broker enforces.
      expect(changes[0]!.details.changed).not.toHaveProperty('port');
      const text = JSON.stringify(changes[0]);
      expect(text).not.toContain(Buffer.from(b.ctx.kek.key).toString('base64url'));
      // The same settings again: nothing recorded.
      await startTestBroker(b.ctx.store, {
        tenantName: 'restarted-again',
        config: { dataDir: b.ctx.config.dataDir, apiTokenTtlSeconds: 120 },
      });
      expect((await chain()).filter((r) => r.action === 'broker.settings_changed')).toHaveLength(1);
      expect(await verify()).toMatchObject({ ok: true });
    });
  });
});
