import type { PepAckAnswer, SessionReceipt } from '@tether-broker/protocol';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { PEP_ACK_RETENTION_MS, pruneAckHistory } from '../../packages/broker/src/enforcement/pep-ack.js';
import { BoundSession, type BrokerClient } from '../../packages/client/src/index.js';
import { type Actor, startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** One sample line of the Prometheus text format, e.g. `name{le="0.25"}` → its value. */
function sample(metrics: string, series: string): number | undefined {
  for (const line of metrics.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

describeEachStore('PEP acks and session receipts', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let edge: Actor;
  let core: Actor;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    edge = await b.principal('edge-pep', 'service', ['pep']);
    core = await b.principal('core-pep', 'service', ['pep']);
  });
  afterEach(() => b.close());

  const ack = (actor: Actor, applied: number, ref = actor.caller.principal.name) =>
    actor.client.call<PepAckAnswer>('POST', `/v1/peps/${encodeURIComponent(ref)}/ack`, { applied });
  const receipt = (client: BrokerClient, id: string) =>
    client.call<SessionReceipt>('GET', `/v1/sessions/${id}/receipt`);

  /** A live session of the pipeline (auto-approved by the scenario's policies). */
  async function liveSession(): Promise<BoundSession> {
    const request = await s.pipeline.client.call<{ id: string; state: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-1',
      justification: 'release',
      duration: 1800,
    });
    expect(request.state).toBe('approved');
    return BoundSession.activate(s.pipeline.client, request.id);
  }

  async function pepRow(actor: Actor) {
    return b.ctx.store.db
      .selectFrom('peps')
      .selectAll()
      .where('principal_id', '=', actor.caller.principal.id)
      .executeTakeFirst();
  }

  async function ackHistory(actor: Actor) {
    return b.ctx.store.db
      .selectFrom('pep_acks')
      .select(['seq', 'at'])
      .where('principal_id', '=', actor.caller.principal.id)
      .orderBy('seq')
      .execute();
  }

  const metrics = async () => (await b.app.inject({ url: '/metrics' })).body;

  it('takes cumulative acks that never move back, by the PEP’s name or id', async () => {
    for (let i = 0; i < 3; i++) await (await liveSession()).end();
    const t0 = b.clock.now();
    expect(await ack(edge, 2)).toEqual({ applied: 2, head: 3 });
    b.clock.advance(1000);
    // A late, lower ack (a retry that arrived after a newer one) leaves the position where it was.
    expect(await ack(edge, 1)).toEqual({ applied: 2, head: 3 });
    expect(await ack(edge, 0, edge.caller.principal.id)).toEqual({ applied: 2, head: 3 });
    b.clock.advance(1000);
    expect(await ack(edge, 3, edge.caller.principal.id)).toEqual({ applied: 3, head: 3 });
    expect(await ack(edge, 3)).toEqual({ applied: 3, head: 3 });

    expect(await pepRow(edge)).toMatchObject({
      tenant_id: b.tenant.id,
      last_applied_seq: 3,
      last_seen_at: b.clock.now(),
      created_at: t0,
      decisions_dropped: 0,
    });
    // History only where the position moved forward: enforcement time of n = first ack ≥ n.
    expect(await ackHistory(edge)).toEqual([
      { seq: 2, at: t0 },
      { seq: 3, at: t0 + 2000 },
    ]);
    expect(await pepRow(core)).toBeUndefined();
  });

  it('refuses an ack for another PEP, from a principal without the pep role, and beyond the head', async () => {
    await (await liveSession()).end();
    await ack(edge, 0);
    const before = await pepRow(edge);
    const refusals = [
      () => ack(core, 1, 'edge-pep'),
      () => ack(core, 1, edge.caller.principal.id),
      () => ack(core, 1, 'no-such-pep'),
      () => ack(s.operator, 1),
      () => s.admin.call('POST', '/v1/peps/root-admin/ack', { applied: 1 }),
      () => s.admin.call('POST', '/v1/peps/edge-pep/ack', { applied: 1 }),
    ];
    for (const attempt of refusals) {
      const err = await refusal(attempt());
      expect([err.status, err.code]).toEqual([403, 'forbidden']);
    }
    const ahead = await refusal(ack(edge, 2));
    expect([ahead.status, ahead.code]).toEqual([400, 'invalid_request']);
    expect(ahead.detail).toContain('ends at 1');
    for (const body of [
      { applied: -1 },
      { applied: 1.5 },
      { applied: 1, extra: true },
      { applied: 'x' },
      { applied: 1e16 },
      {},
    ]) {
      const err = await refusal(edge.client.call('POST', '/v1/peps/edge-pep/ack', body));
      expect([err.status, err.code], JSON.stringify(body)).toEqual([400, 'invalid_request']);
    }
    // Nothing moved: not the refused PEP's position, nor its history, nor anyone else's.
    expect(await pepRow(edge)).toEqual(before);
    expect(await ackHistory(edge)).toEqual([]);
    expect(await pepRow(core)).toBeUndefined();
  });

  it('answers a receipt for a live session, then pending PEPs, then when each enforced the end', async () => {
    const session = await liveSession();
    await ack(edge, 0);
    await ack(core, 0);
    const live = await receipt(s.pipeline.client, session.info.id);
    expect(live).toEqual({
      session: session.info.id,
      state: 'active',
      ended_at: null,
      reason: null,
      seq: null,
      enforced: false,
      peps: [
        expect.objectContaining({ name: 'core-pep', applied: 0, live: true, enforced_at: null }),
        expect.objectContaining({ name: 'edge-pep', applied: 0, live: true, enforced_at: null }),
      ],
      pending: [],
      // The privilege names no connector: nothing was minted downstream; nor requires recording.
      credentials: [],
      recording: null,
    });

    b.clock.advance(5000);
    const endedAt = b.clock.now();
    await session.end('revoked');
    const ended = await receipt(s.pipeline.client, session.info.id);
    expect(ended).toMatchObject({
      state: 'ended',
      ended_at: iso(endedAt),
      reason: 'revoked',
      seq: 1,
      enforced: false,
      pending: ['core-pep', 'edge-pep'],
    });

    b.clock.advance(120);
    await ack(edge, 1);
    const half = await receipt(s.admin, session.info.id);
    expect(half.enforced).toBe(false);
    expect(half.pending).toEqual(['core-pep']);
    expect(half.peps).toEqual([
      {
        id: core.caller.principal.id,
        name: 'core-pep',
        applied: 0,
        last_seen_at: iso(endedAt - 5000),
        live: true,
        enforced_at: null,
        // Acks that name no instance count for one unnamed instance of the principal.
        instances: [{ id: '-', applied: 0, last_seen_at: iso(endedAt - 5000), enforced_at: null }],
      },
      {
        id: edge.caller.principal.id,
        name: 'edge-pep',
        applied: 1,
        last_seen_at: iso(endedAt + 120),
        live: true,
        enforced_at: iso(endedAt + 120),
        instances: [
          { id: '-', applied: 1, last_seen_at: iso(endedAt + 120), enforced_at: iso(endedAt + 120) },
        ],
      },
    ]);

    // Another end, and core-pep catches up on both in one ack.
    await (await liveSession()).end();
    b.clock.advance(2000);
    await ack(core, 2);
    b.clock.advance(1000);
    await ack(edge, 2);
    const done = await receipt(s.admin, session.info.id);
    expect(done.enforced).toBe(true);
    expect(done.pending).toEqual([]);
    // The time each PEP first covered this end; later acks do not move it.
    expect(done.peps.map((p) => [p.name, p.applied, p.enforced_at])).toEqual([
      ['core-pep', 2, iso(endedAt + 2120)],
      ['edge-pep', 2, iso(endedAt + 120)],
    ]);
  });

  it('waits only for live PEPs: one silent for longer than the liveness window is neither live nor pending', async () => {
    expect(b.ctx.config.pepLivenessSeconds).toBe(30);
    await ack(edge, 0);
    await ack(core, 0);
    b.clock.advance(30_000);
    await ack(edge, 0);
    const session = await liveSession();
    await session.end();
    // core-pep was heard from exactly 30 s ago: still live.
    expect((await receipt(s.admin, session.info.id)).pending).toEqual(['core-pep', 'edge-pep']);

    b.clock.advance(1);
    const r = await receipt(s.admin, session.info.id);
    expect(r.pending).toEqual(['edge-pep']);
    expect(r.peps.find((p) => p.name === 'core-pep')).toMatchObject({ live: false, enforced_at: null });
    await ack(edge, 1);
    const enforced = await receipt(s.admin, session.info.id);
    expect(enforced).toMatchObject({ enforced: true, pending: [] });
    expect(enforced.peps.find((p) => p.name === 'core-pep')).toMatchObject({ live: false, applied: 0 });

    // When it comes back it catches up, and the receipt says when.
    b.clock.advance(60_000);
    await ack(core, 1);
    const back = await receipt(s.admin, session.info.id);
    expect(back.peps.find((p) => p.name === 'core-pep')).toMatchObject({
      live: true,
      applied: 1,
      enforced_at: iso(b.clock.now()),
    });
    // edge-pep is now the silent one; the end stays enforced.
    expect(back).toMatchObject({ enforced: true, pending: [] });
  });

  it('counts a decision report as hearing from a PEP', async () => {
    await ack(edge, 0);
    const session = await liveSession();
    await session.end();
    await s.admin.call('PUT', '/v1/peps/core-pep/audiences', { audiences: ['https://deploy.example'] });
    await core.client.call('POST', '/v1/decisions', {
      audience: 'https://deploy.example',
      decisions: [
        { at: b.clock.now(), allow: false, code: 'invalid_token', action: 'a', resource: 'r', session: null },
      ],
      dropped: 0,
    });
    expect((await receipt(s.admin, session.info.id)).pending).toEqual(['core-pep', 'edge-pep']);
  });

  it('uses the configured liveness window', async () => {
    const short = await startTestBroker(await fixture.open(), { config: { pepLivenessSeconds: 5 } });
    try {
      const t = await setUpScenario(short);
      const pep = await short.principal('edge-pep', 'service', ['pep']);
      await pep.client.call('POST', '/v1/peps/edge-pep/ack', { applied: 0 });
      const request = await t.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
        privilege: 'deploy',
        ticket: 'CHG-2',
        justification: 'release',
        duration: 600,
      });
      const session = await BoundSession.activate(t.pipeline.client, request.id);
      await session.end();
      short.clock.advance(5001);
      expect(await t.admin.call('GET', `/v1/sessions/${session.info.id}/receipt`)).toMatchObject({
        enforced: true,
        pending: [],
        peps: [expect.objectContaining({ name: 'edge-pep', live: false })],
      });
    } finally {
      await short.close();
    }
  });

  it('shows a receipt to the holder, admins and auditors only, and never across tenants', async () => {
    const session = await liveSession();
    await session.end();
    const auditor = await b.principal('audrey', 'human', ['auditor']);
    expect((await receipt(auditor.client, session.info.id)).state).toBe('ended');
    expect((await receipt(s.admin, session.info.id)).state).toBe('ended');
    expect((await receipt(s.pipeline.client, session.info.id)).state).toBe('ended');
    for (const other of [s.outsider.client, s.operator.client, edge.client]) {
      const err = await refusal(receipt(other, session.info.id));
      expect([err.status, err.code]).toEqual([404, 'not_found']);
    }

    const globex = await startTestBroker(b.ctx.store, { tenantName: 'globex', reuse: b });
    const foreignAdmin = globex.client(globex.adminIdentity);
    const foreign = await refusal(receipt(foreignAdmin, session.info.id));
    expect([foreign.status, foreign.code]).toEqual([404, 'not_found']);
    // Identical to a session that does not exist at all.
    const missing = await refusal(receipt(foreignAdmin, 'ses_00000000000000000000000000'));
    expect([missing.status, missing.code, missing.detail.replace(/"ses_\w+"/, 'X')]).toEqual([
      foreign.status,
      foreign.code,
      foreign.detail.replace(/"ses_\w+"/, 'X'),
    ]);
    const malformed = await refusal(receipt(s.admin, 'not-a-session'));
    expect([malformed.status, malformed.code]).toEqual([400, 'invalid_request']);

    // A PEP of another tenant acks its own (empty) log: it is no PEP of acme's receipts.
    const foreignPep = await globex.principal('edge-pep', 'service', ['pep']);
    expect(await ack(foreignPep, 0)).toEqual({ applied: 0, head: 0 });
    const refusedAhead = await refusal(ack(foreignPep, 1));
    expect(refusedAhead.code).toBe('invalid_request');
    await ack(edge, 1);
    const r = await receipt(s.admin, session.info.id);
    expect(r.peps.map((p) => p.id)).toEqual([edge.caller.principal.id]);
    expect(r.enforced).toBe(true);
  });

  it('observes revocation latency for each newly covered session end, once', async () => {
    await ack(edge, 0);
    await ack(core, 0);
    const before = await metrics();
    expect(before).toContain('# TYPE tether_revocation_latency_seconds histogram');
    expect(sample(before, 'tether_revocation_latency_seconds_count')).toBe(0);

    await (await liveSession()).end();
    b.clock.advance(250);
    await ack(edge, 1);
    b.clock.advance(1750);
    await ack(core, 1);
    // Acks that cover nothing new observe nothing.
    await ack(edge, 1);
    await ack(core, 0);
    const after = await metrics();
    expect(sample(after, 'tether_revocation_latency_seconds_count')).toBe(2);
    expect(sample(after, 'tether_revocation_latency_seconds_sum')).toBeCloseTo(2.25, 6);
    expect(sample(after, 'tether_revocation_latency_seconds_bucket{le="0.25"}')).toBe(1);
    expect(sample(after, 'tether_revocation_latency_seconds_bucket{le="2.5"}')).toBe(2);

    // A PEP first heard from after these ends catches up on them: that is no revocation latency.
    const late = await b.principal('late-pep', 'service', ['pep']);
    b.clock.advance(60_000);
    await ack(late, 0);
    await ack(late, 1);
    expect(sample(await metrics(), 'tether_revocation_latency_seconds_count')).toBe(2);
    // An end after it first spoke is timed, like any other.
    await (await liveSession()).end();
    b.clock.advance(40);
    await ack(late, 2);
    const last = await metrics();
    expect(sample(last, 'tether_revocation_latency_seconds_count')).toBe(3);
    expect(sample(last, 'tether_revocation_latency_seconds_sum')).toBeCloseTo(2.29, 6);
  });

  it('prunes ack history past its retention: the end stays enforced, its time is no longer known', async () => {
    const session = await liveSession();
    await session.end();
    await ack(edge, 1);
    b.clock.advance(PEP_ACK_RETENTION_MS - 1);
    expect(await pruneAckHistory(b.ctx.store, b.clock.now())).toBe(0);
    b.clock.advance(1);
    await ack(edge, 1);
    // Kept: still within the window.
    expect((await receipt(s.admin, session.info.id)).peps[0]?.enforced_at).not.toBeNull();
    b.clock.advance(1);
    // The principal's ack and its (unnamed) instance's ack.
    expect(await pruneAckHistory(b.ctx.store, b.clock.now())).toBe(2);
    expect(await ackHistory(edge)).toEqual([]);
    const r = await receipt(s.admin, session.info.id);
    expect(r).toMatchObject({ enforced: true, pending: [] });
    expect(r.peps[0]).toMatchObject({ name: 'edge-pep', applied: 1, enforced_at: null });
  });
});
