import type { PollView } from '@tether-broker/protocol/api';
import type { JSONWebKeySet, JWTPayload } from 'jose';
import { pino } from 'pino';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { openBroker } from '../../packages/broker/src/broker.js';
import type { BrokerContext } from '../../packages/broker/src/core/context.js';
import { appendRevocationEvent } from '../../packages/broker/src/revocation/log.js';
import { deliverDue } from '../../packages/broker/src/ssf-streams/delivery.js';
import { inTransaction } from '../../packages/broker/src/store/database.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { SetReceiver, verifySet } from '../support/ssf-receiver.js';
import { describeEachStore } from '../support/stores.js';

const SESSION_REVOKED = 'https://schemas.openid.net/secevent/caep/event-type/session-revoked';
const TOKEN_CLAIMS_CHANGE = 'https://schemas.openid.net/secevent/caep/event-type/token-claims-change';
const VERIFICATION = 'https://schemas.openid.net/secevent/ssf/event-type/verification';
const PUSH = 'urn:ietf:rfc:8935';
/** The loopback receiver is on the operator's allow-list, over http. */
const ALLOW_LOOPBACK = { outboundAllowHosts: ['127.0.0.1'], outboundAllowHttp: true };
/** Jitter pinned to the middle: delays are 3/4 of the exponential step (750 ms, 1.5 s, 3 s, …). */
const MIDDLE = { random: () => 0.5 };

describeEachStore('SSF delivery of session signals', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let receiver: Actor;
  let endpoint: SetReceiver;
  let jwks: JSONWebKeySet;
  afterAll(() => fixture.cleanup());
  afterEach(async () => {
    await endpoint.down();
    await b.close();
  });

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), { config: ALLOW_LOOPBACK });
    s = await setUpScenario(b);
    receiver = await b.principal('saas-receiver', 'service', ['receiver']);
    endpoint = await SetReceiver.start();
    jwks = (await b.app.inject({ url: '/.well-known/jwks.json' })).json() as JSONWebKeySet;
  });

  async function liveSession(): Promise<string> {
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-7',
      justification: 'rotate rules',
      duration: 1800,
    });
    await s.approvers[0]?.client.call('POST', `/v1/requests/${req.id}/approve`);
    return (await BoundSession.activate(s.operator.client, req.id)).info.id;
  }

  const endSession = (sid: string) =>
    s.admin.call('POST', `/v1/sessions/${sid}/end`, { reason: 'revoked', note: 'incident 42' });

  async function pushStream(extra: Record<string, unknown> = {}): Promise<string> {
    const created = await receiver.client.call<{ stream_id: string }>('POST', '/v1/ssf/streams', {
      delivery: { method: PUSH, endpoint_url: endpoint.url },
      ...extra,
    });
    return created.stream_id;
  }

  const verify = (jws: string) =>
    verifySet(jws, jwks, { issuer: PUBLIC_URL, audience: receiver.caller.principal.id });
  const sessionOf = (claims: JWTPayload) => (claims.sub_id as { session: { id: string } }).session.id;
  const outboxSize = async () =>
    Number(
      (
        await b.ctx.store.db
          .selectFrom('ssf_outbox')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  it('sends a signed session-revoked SET when a session ends', async () => {
    await pushStream();
    const sid = await liveSession();
    await endSession(sid);
    expect(await deliverDue(b.ctx)).toEqual({ delivered: 1, refused: 0, failed: 0 });

    const [push] = endpoint.accepted;
    expect(push?.contentType).toBe('application/secevent+jwt');
    const claims = await verify(push?.jws ?? '');
    expect(claims).toEqual({
      iss: PUBLIC_URL,
      aud: receiver.caller.principal.id,
      jti: expect.any(String),
      iat: Math.floor(b.clock.now() / 1000),
      txn: expect.stringMatching(new RegExp(`^${b.tenant.id}\\.\\d+$`)),
      sub_id: {
        format: 'complex',
        user: { format: 'iss_sub', iss: PUBLIC_URL, sub: s.operator.caller.principal.id },
        session: { format: 'opaque', id: sid },
        tenant: { format: 'opaque', id: b.tenant.id },
      },
      events: {
        [SESSION_REVOKED]: {
          event_timestamp: Math.floor(b.clock.now() / 1000),
          initiating_entity: 'admin',
          reason_admin: { en: 'Tether session ended: revoked' },
        },
      },
    });
    expect(await outboxSize()).toBe(0);
  });

  it('sends a signed token-claims-change with the narrower entitlement when a session is narrowed', async () => {
    await pushStream({ events_requested: [TOKEN_CLAIMS_CHANGE] });
    const sid = await liveSession();
    const now = b.clock.now();
    // As re-evaluation narrows: the smaller grant and the `session_narrowed` event, in one transaction.
    await inTransaction(b.ctx.store, async (tx) => {
      const row = await tx.db
        .selectFrom('sessions')
        .select(['grant', 'hard_expires_at'])
        .where('id', '=', sid)
        .executeTakeFirstOrThrow();
      const grant = { ...JSON.parse(row.grant), resources: ['firewall/edge-1'] };
      await tx.db
        .updateTable('sessions')
        .set({ grant: JSON.stringify(grant) })
        .where('id', '=', sid)
        .execute();
      await appendRevocationEvent(tx, b.tenant.id, now, {
        type: 'session_narrowed',
        data: { sid, before: Math.floor(now / 1000), session_exp: Math.floor(row.hard_expires_at / 1000) },
      });
    });
    // Ending the session is not requested on this stream: only the narrowing travels.
    await endSession(sid);
    expect(await deliverDue(b.ctx)).toEqual({ delivered: 1, refused: 0, failed: 0 });
    const claims = await verify(endpoint.accepted[0]?.jws ?? '');
    expect(sessionOf(claims)).toBe(sid);
    expect(claims.events).toEqual({
      [TOKEN_CLAIMS_CHANGE]: {
        event_timestamp: Math.floor(now / 1000),
        claims: {
          authorization_details: [
            {
              type: 'tether_privilege',
              privilege: 'firewall-admin',
              actions: ['firewall:rules.write'],
              resources: ['firewall/edge-1'],
            },
          ],
        },
      },
    });
  });

  it('queues nothing for a change that rolls back, and only on the streams that asked for the event', async () => {
    const revokedOnly = await pushStream({ events_requested: [SESSION_REVOKED] });
    await pushStream({ events_requested: [TOKEN_CLAIMS_CHANGE] });
    const sid = await liveSession();
    await expect(
      inTransaction(b.ctx.store, async (tx) => {
        await appendRevocationEvent(tx, b.tenant.id, b.clock.now(), {
          type: 'session_ended',
          data: { sid, reason: 'revoked', session_exp: Math.floor(b.clock.now() / 1000) + 60 },
        });
        throw new Error('the state change fails after the event was appended');
      }),
    ).rejects.toThrow('the state change fails');
    expect(await outboxSize()).toBe(0);
    await endSession(sid);
    const queued = await b.ctx.store.db.selectFrom('ssf_outbox').select(['stream_id', 'kind']).execute();
    expect(queued).toEqual([{ stream_id: revokedOnly, kind: SESSION_REVOKED }]);
  });

  it('survives a receiver that is down for a while: retries with backoff, then delivers in order, across a restart', async () => {
    await pushStream();
    const sids = [await liveSession(), await liveSession(), await liveSession()];
    await endpoint.down();
    for (const sid of sids) await endSession(sid);
    expect(await outboxSize()).toBe(3);

    // Connection refused: only the oldest SET is tried; the others wait behind it.
    expect(await deliverDue(b.ctx, b.clock.now(), MIDDLE)).toEqual({ delivered: 0, refused: 0, failed: 1 });
    expect(await deliverDue(b.ctx, b.clock.now(), MIDDLE)).toEqual({ delivered: 0, refused: 0, failed: 0 });
    b.clock.advance(749);
    expect(await deliverDue(b.ctx, b.clock.now(), MIDDLE)).toEqual({ delivered: 0, refused: 0, failed: 0 });
    b.clock.advance(1);
    expect(await deliverDue(b.ctx, b.clock.now(), MIDDLE)).toEqual({ delivered: 0, refused: 0, failed: 1 });

    // Up, but answering 503: the backoff has doubled.
    await endpoint.up();
    endpoint.mode = { kind: 'unavailable' };
    b.clock.advance(1499);
    expect(await deliverDue(b.ctx, b.clock.now(), MIDDLE)).toEqual({ delivered: 0, refused: 0, failed: 0 });
    b.clock.advance(1);
    expect(await deliverDue(b.ctx, b.clock.now(), MIDDLE)).toEqual({ delivered: 0, refused: 0, failed: 1 });
    expect(endpoint.pushes.map((p) => sessionOf(p.claims))).toEqual([sids[0]]);
    const firstJti = endpoint.pushes[0]?.claims.jti;

    // The broker restarts: a new process state over the same store, same keys.
    const restarted: BrokerContext = await openBroker({
      config: { publicUrl: PUBLIC_URL, dataDir: b.ctx.config.dataDir, ...ALLOW_LOOPBACK },
      clock: b.clock,
      store: b.ctx.store,
      logger: pino({ level: 'silent' }),
    });
    endpoint.mode = { kind: 'accept' };
    b.clock.advance(2999);
    expect(await deliverDue(restarted, b.clock.now(), MIDDLE)).toEqual({
      delivered: 0,
      refused: 0,
      failed: 0,
    });
    b.clock.advance(1);
    expect(await deliverDue(restarted, b.clock.now(), MIDDLE)).toEqual({
      delivered: 3,
      refused: 0,
      failed: 0,
    });

    // In order, nothing lost, nothing sent twice once accepted; the retried SET kept its jti.
    const accepted = await Promise.all(endpoint.accepted.map((p) => verify(p.jws)));
    expect(accepted.map(sessionOf)).toEqual(sids);
    expect(accepted[0]?.jti).toBe(firstJti);
    expect(new Set(accepted.map((c) => c.jti)).size).toBe(3);
    expect(await outboxSize()).toBe(0);
    b.clock.advance(3600_000);
    expect(await deliverDue(b.ctx)).toEqual({ delivered: 0, refused: 0, failed: 0 });
  });

  it('does not retry a SET the receiver refuses with 400, records the refusal, and sends the next one', async () => {
    const streamId = await pushStream();
    endpoint.next.push({ kind: 'refuse', err: 'invalid_audience', description: 'not for us' });
    const sid = await liveSession();
    await endSession(sid);
    await receiver.client.call('POST', '/v1/ssf/verify', { stream_id: streamId, state: 'after' });
    expect(await deliverDue(b.ctx)).toEqual({ delivered: 1, refused: 1, failed: 0 });
    b.clock.advance(3600_000);
    expect(await deliverDue(b.ctx)).toEqual({ delivered: 0, refused: 0, failed: 0 });
    expect(endpoint.pushes.map((p) => p.answered)).toEqual([400, 202]);
    expect(endpoint.pushes[1]?.claims.events).toEqual({ [VERIFICATION]: { state: 'after' } });

    const audit = await s.admin.call<{
      records: { action: string; target: string; outcome: string; details: Record<string, unknown> }[];
    }>('GET', '/v1/audit');
    const refused = audit.records.filter((r) => r.action === 'ssf.delivery.refused');
    expect(refused).toEqual([
      expect.objectContaining({
        target: streamId,
        outcome: 'refused',
        details: expect.objectContaining({
          event: SESSION_REVOKED,
          err: 'invalid_audience',
          description: 'not for us',
        }),
      }),
    ]);
  });

  it('holds SETs while a stream is paused, sends them in order once enabled, and drops them when disabled', async () => {
    const streamId = await pushStream();
    const status = (value: string) =>
      receiver.client.call('POST', '/v1/ssf/status', { stream_id: streamId, status: value });
    await status('paused');
    const sids = [await liveSession(), await liveSession()];
    for (const sid of sids) await endSession(sid);
    expect(await deliverDue(b.ctx)).toEqual({ delivered: 0, refused: 0, failed: 0 });
    await status('enabled');
    expect(await deliverDue(b.ctx)).toEqual({ delivered: 2, refused: 0, failed: 0 });
    expect(endpoint.accepted.map((p) => sessionOf(p.claims))).toEqual(sids);

    await status('paused');
    await endSession(await liveSession());
    expect(await outboxSize()).toBe(1);
    await status('disabled');
    expect(await outboxSize()).toBe(0);
    await endSession(await liveSession());
    expect(await outboxSize()).toBe(0);
  });

  it('serves each stream under one replica at a time: concurrent workers send each SET once, in order', async () => {
    await pushStream();
    const sids: string[] = [];
    for (let i = 0; i < 4; i++) sids.push(await liveSession());
    for (const sid of sids) await endSession(sid);
    const replica: BrokerContext = await openBroker({
      config: { publicUrl: PUBLIC_URL, dataDir: b.ctx.config.dataDir, ...ALLOW_LOOPBACK },
      clock: b.clock,
      store: b.ctx.store,
      logger: pino({ level: 'silent' }),
    });
    const reports = await Promise.all([deliverDue(b.ctx), deliverDue(replica), deliverDue(b.ctx)]);
    expect(reports.reduce((n, r) => n + r.delivered, 0)).toBe(4);
    expect(endpoint.pushes.map((p) => sessionOf(p.claims))).toEqual(sids);
  });

  it('delivers by poll (RFC 8936): polled, acknowledged, errors recorded, a long poll woken by a new SET', async () => {
    const { stream_id: streamId } = await receiver.client.call<{ stream_id: string }>(
      'POST',
      '/v1/ssf/streams',
      {},
    );
    const poll = (body: Record<string, unknown>) =>
      receiver.client.call<PollView>('POST', `/v1/ssf/poll/${streamId}`, body);
    expect(await poll({ returnImmediately: true })).toEqual({ sets: {}, moreAvailable: false });

    const first = await liveSession();
    await endSession(first);
    const answer = await poll({ returnImmediately: true });
    const [jti, jws] = Object.entries(answer.sets)[0] ?? [];
    expect(answer.moreAvailable).toBe(false);
    const claims = await verify(jws ?? '');
    expect(claims.jti).toBe(jti);
    expect(sessionOf(claims)).toBe(first);
    // Not acknowledged: handed out again, same SET.
    expect(Object.keys((await poll({ returnImmediately: true })).sets)).toEqual([jti]);
    // Acknowledged: gone.
    expect(await poll({ ack: [jti], returnImmediately: true })).toEqual({ sets: {}, moreAvailable: false });

    const more = [await liveSession(), await liveSession()];
    for (const sid of more) await endSession(sid);
    const one = await poll({ maxEvents: 1, returnImmediately: true });
    expect(one.moreAvailable).toBe(true);
    const [badJti, badJws] = Object.entries(one.sets)[0] ?? [];
    expect(sessionOf(await verify(badJws ?? ''))).toBe(more[0]);
    const next = await poll({
      setErrs: { [badJti ?? '']: { err: 'invalid_key', description: 'cannot verify' } },
      returnImmediately: true,
    });
    expect(Object.values(next.sets).length).toBe(1);
    expect(sessionOf(await verify(Object.values(next.sets)[0] ?? ''))).toBe(more[1]);
    const audit = await s.admin.call<{ records: { action: string; details: Record<string, unknown> }[] }>(
      'GET',
      '/v1/audit',
    );
    expect(audit.records.filter((r) => r.action === 'ssf.delivery.refused').map((r) => r.details)).toEqual([
      expect.objectContaining({ jti: badJti, err: 'invalid_key', description: 'cannot verify' }),
    ]);
    await poll({ ack: Object.keys(next.sets), maxEvents: 0 });

    // A long poll waits for the next SET and answers when it is queued.
    const last = await liveSession();
    const waiting = poll({});
    await endSession(last);
    const woken = await waiting;
    expect(
      Object.values(woken.sets).map((j) =>
        sessionOf(JSON.parse(Buffer.from(j.split('.')[1] ?? '', 'base64url').toString())),
      ),
    ).toEqual([last]);

    // A push stream is not polled; another receiver's stream does not exist.
    const push = await pushStream();
    expect((await refusal(receiver.client.call('POST', `/v1/ssf/poll/${push}`, {}))).code).toBe(
      'invalid_request',
    );
    const other = await b.principal('other-receiver', 'service', ['receiver']);
    expect((await refusal(other.client.call('POST', `/v1/ssf/poll/${streamId}`, {}))).code).toBe('not_found');
  });
});
