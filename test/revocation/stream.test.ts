import {
  type KeySource,
  localKeySource,
  RevocationFeedVerifier,
  RevocationMessageRefused,
} from '@tether-broker/pep';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import type { Kek } from '../../packages/broker/src/config/key-encryption.js';
import { retireExpiredKeys, rotateSigningKey } from '../../packages/broker/src/operations/signing-keys.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { openSse, type SseStream, untilHeartbeat } from '../support/sse.js';
import { describeEachStore } from '../support/stores.js';

/** A code the PEP verifier refused a message with (throws if it accepted it). */
async function refusalCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RevocationMessageRefused) return err.code;
    throw err;
  }
  throw new Error('expected the PEP verifier to refuse the message');
}

/** The next heartbeat made at `at` (epoch ms) or later; earlier ones may still be in flight. */
async function heartbeatFrom(stream: SseStream, at: number): Promise<string> {
  for (;;) {
    const { data } = await stream.nextOf('heartbeat');
    if ((decodeJwt(data).iat ?? 0) * 1000 >= at) return data;
  }
}

describeEachStore('revocation stream (GET /v1/events)', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let base: string;
  let pep: Actor;
  let keys: KeySource;
  const streams: SseStream[] = [];
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), { config: { heartbeatIntervalMs: 50 } });
    s = await setUpScenario(b);
    pep = await b.principal('edge-pep', 'service', ['pep']);
    keys = await localKeySource(b.ctx.keys.jwks());
    base = await b.app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterEach(async () => {
    for (const stream of streams.splice(0)) stream.close();
    await b.close();
  });

  /** Follows the log as `actor` (over real HTTP: inject cannot stream). */
  async function follow(actor: Actor, options: { query?: string; headers?: Record<string, string> } = {}) {
    const stream = await openSse(`${base}/v1/events${options.query ?? ''}`, {
      authorization: `Bearer ${await actor.client.bearerToken()}`,
      ...options.headers,
    });
    streams.push(stream);
    return stream;
  }

  function feed(position = 0, tenant = b.tenant.id, keySource = keys) {
    return new RevocationFeedVerifier({
      keys: keySource,
      issuer: PUBLIC_URL,
      tenant,
      now: () => b.clock.now(),
      heartbeatMaxAgeMs: 10_000,
      position,
    });
  }

  /** A live session of the pipeline (auto-approved by the scenario's policies). */
  async function liveSession(actor: Actor = s.pipeline): Promise<BoundSession> {
    const request = await actor.client.call<{ id: string; state: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-1',
      justification: 'release',
      duration: 1800,
    });
    expect(request.state).toBe('approved');
    return BoundSession.activate(actor.client, request.id);
  }

  it('streams an ended session as the next signed event, and signed heartbeats carrying the head', async () => {
    const session = await liveSession();
    const stream = await follow(pep);
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(stream.headers['cache-control']).toBe('no-store');
    const verifier = feed();

    const first = await stream.next();
    expect(first).toMatchObject({ event: 'heartbeat', id: undefined });
    expect(await verifier.verifyHeartbeat(first.data)).toEqual({
      seq: 0,
      issuedAt: Math.floor(b.clock.now() / 1000) * 1000,
      caughtUp: true,
    });

    await session.end();
    const message = await stream.nextOf('revocation');
    expect(message.id).toBe('1');
    expect(await verifier.verifyEvent(message.data)).toEqual({
      seq: 1,
      issuedAt: Math.floor(b.clock.now() / 1000) * 1000,
      event: {
        type: 'session_ended',
        data: {
          sid: session.info.id,
          reason: 'completed',
          session_exp: Math.floor(session.info.hardExpiresAt / 1000),
        },
      },
    });
    expect(verifier.position).toBe(1);
    // The next heartbeat confirms the PEP holds everything up to the head.
    const beat = await verifier.verifyHeartbeat((await stream.nextOf('heartbeat')).data);
    expect(beat).toMatchObject({ seq: 1, caughtUp: true });
  });

  it('resumes after Last-Event-ID with exactly the events missed while disconnected', async () => {
    const sessions = [];
    for (let i = 0; i < 4; i++) sessions.push(await liveSession());
    const first = await follow(pep);
    await sessions[0]!.end();
    const one = await first.nextOf('revocation');
    expect(one.id).toBe('1');
    first.close();

    for (const session of sessions.slice(1)) await session.end('revoked');

    const verifier = feed(1);
    const resumed = await follow(pep, { headers: { 'last-event-id': '1' } });
    const { before, heartbeat } = await untilHeartbeat(resumed);
    expect(before.map((m) => [m.event, m.id])).toEqual([
      ['revocation', '2'],
      ['revocation', '3'],
      ['revocation', '4'],
    ]);
    const sids = [];
    for (const m of before) {
      const { event } = await verifier.verifyEvent(m.data);
      if (event.type === 'session_ended') sids.push(event.data.sid);
    }
    expect(sids).toEqual(sessions.slice(1).map((x) => x.info.id));
    expect(await verifier.verifyHeartbeat(heartbeat.data)).toMatchObject({ seq: 4, caughtUp: true });

    // ?after= does the same; Last-Event-ID (what a reconnecting EventSource sends) wins over it.
    const fromQuery = await untilHeartbeat(await follow(pep, { query: '?after=2' }));
    expect(fromQuery.before.map((m) => m.id)).toEqual(['3', '4']);
    const both = await untilHeartbeat(
      await follow(pep, { query: '?after=0', headers: { 'last-event-id': '3' } }),
    );
    expect(both.before.map((m) => m.id)).toEqual(['4']);
    // At the head: nothing to replay, the heartbeat says so.
    const atHead = await untilHeartbeat(await follow(pep, { headers: { 'last-event-id': '4' } }));
    expect(atHead.before).toEqual([]);
  });

  it('refuses a position ahead of the log, or a malformed one, with a 400 problem', async () => {
    await (await liveSession()).end();
    for (const options of [
      { query: '?after=2' },
      { headers: { 'last-event-id': '99' } },
      { headers: { 'last-event-id': 'abc' } },
      { headers: { 'last-event-id': '-1' } },
      { query: '?after=-1' },
      { query: '?after=x' },
      { query: '?from=1' },
    ]) {
      const stream = await follow(pep, options);
      expect(stream.status, JSON.stringify(options)).toBe(400);
      expect(stream.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(((await stream.json()) as { code: string }).code).toBe('invalid_request');
    }
  });

  it('refuses principals without the pep role (403) and callers without a token (401)', async () => {
    const admin = { caller: b.admin, identity: b.adminIdentity, client: b.client(b.adminIdentity) };
    for (const actor of [admin, s.operator, s.pipeline]) {
      const stream = await follow(actor);
      expect(stream.status).toBe(403);
      expect(((await stream.json()) as { code: string }).code).toBe('forbidden');
    }
    const anonymous = await openSse(`${base}/v1/events`);
    streams.push(anonymous);
    expect(anonymous.status).toBe(401);
    // No stream is left open for a refused caller.
    expect(b.ctx.revocations.listenerCount(b.tenant.id)).toBe(0);
  });

  it("never sends one tenant's events to another tenant's PEP", async () => {
    const other = await startTestBroker(b.ctx.store, { tenantName: 'globex', reuse: b });
    const otherPep = await other.principal('globex-pep', 'service', ['pep']);
    const mine = await follow(pep);
    const theirs = await follow(otherPep);
    const theirFeed = feed(0, other.tenant.id);
    await theirFeed.verifyHeartbeat((await theirs.nextOf('heartbeat')).data);

    const session = await liveSession();
    await session.end();
    const event = await mine.nextOf('revocation');
    expect(event.id).toBe('1');
    // Signed for tenant A: tenant B's verifier refuses it even if a relay passed it on.
    expect(await refusalCode(theirFeed.verifyEvent(event.data))).toBe('wrong_tenant');

    // Tenant B's stream goes on with heartbeats of its own, empty log and nothing else.
    for (let i = 0; i < 3; i++) {
      const message = await theirs.next();
      expect(message.event).toBe('heartbeat');
      expect(await theirFeed.verifyHeartbeat(message.data)).toMatchObject({ seq: 0, caughtUp: true });
    }
    // Positions are per tenant: tenant B's log is empty, so position 1 is ahead of it.
    const ahead = await follow(otherPep, { query: '?after=1' });
    expect(ahead.status).toBe(400);
  });

  it('a PEP verifier rejects forged events, altered payloads and replayed heartbeats', async () => {
    const session = await liveSession();
    const stream = await follow(pep);
    const oldBeat = (await stream.nextOf('heartbeat')).data;
    await session.end();
    const genuine = (await stream.nextOf('revocation')).data;

    // Forged: a revocation signed by another key, under the broker's kid or under its own.
    const { privateKey } = await generateKeyPair('Ed25519');
    const claims = decodeJwt(genuine);
    const kid = decodeProtectedHeader(genuine).kid!;
    for (const header of [{ kid }, { kid: 'attacker-key' }]) {
      const forged = await new SignJWT({ ...claims, seq: 1 })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'tether-event+jwt', ...header })
        .sign(privateKey);
      expect(await refusalCode(feed().verifyEvent(forged))).toBe(
        header.kid === kid ? 'bad_signature' : 'unknown_key',
      );
    }

    // Altered: the genuine event with another session id in its payload.
    const [h, , sig] = genuine.split('.');
    const altered = { ...claims, data: { ...(claims.data as object), sid: 'ses_someoneelse' } };
    const tampered = `${h}.${Buffer.from(JSON.stringify(altered)).toString('base64url')}.${sig}`;
    expect(await refusalCode(feed().verifyEvent(tampered))).toBe('bad_signature');

    // Replayed heartbeat: once a newer one was accepted, and once it is past its max age.
    const verifier = feed();
    await verifier.verifyEvent(genuine);
    b.clock.advance(3_000);
    const fresh = await heartbeatFrom(stream, b.clock.now() - 999);
    expect(await verifier.verifyHeartbeat(fresh)).toMatchObject({ seq: 1, caughtUp: true });
    expect(await refusalCode(verifier.verifyHeartbeat(oldBeat))).toBe('replayed');
    b.clock.advance(10_001);
    expect(await refusalCode(feed().verifyHeartbeat(oldBeat))).toBe('stale');
    // A replayed event changes nothing either, and an event is no heartbeat.
    expect(await refusalCode(verifier.verifyEvent(genuine))).toBe('replayed');
    expect(await refusalCode(verifier.verifyHeartbeat(genuine))).toBe('wrong_type');
    expect(verifier.position).toBe(1);
  });

  it('delivers concurrently ended sessions as seq 1..n with no gaps, in order', async () => {
    const n = 30;
    const sessions: BoundSession[] = [];
    for (let i = 0; i < n; i++) sessions.push(await liveSession());
    const stream = await follow(pep);
    await stream.nextOf('heartbeat');

    await Promise.all(sessions.map((session) => session.end('revoked')));

    const verifier = feed();
    const sids: string[] = [];
    while (sids.length < n) {
      const message = await stream.nextOf('revocation');
      expect(message.id).toBe(String(sids.length + 1));
      // The verifier accepts only seq = position + 1: a gap or a reordering would be refused.
      const { event } = await verifier.verifyEvent(message.data);
      if (event.type === 'session_ended') sids.push(event.data.sid);
    }
    expect(new Set(sids)).toEqual(new Set(sessions.map((x) => x.info.id)));
    const stored = await b.ctx.store.db
      .selectFrom('revocation_events')
      .select('seq')
      .where('tenant_id', '=', b.tenant.id)
      .orderBy('seq')
      .execute();
    expect(stored.map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  });

  it("appends key_retired to every tenant's log and streams it, signed by the new key", async () => {
    const other = await startTestBroker(b.ctx.store, { tenantName: 'globex', reuse: b });
    const otherPep = await other.principal('globex-pep', 'service', ['pep']);
    const mine = await follow(pep);
    const theirs = await follow(otherPep);
    await mine.nextOf('heartbeat');
    await theirs.nextOf('heartbeat');

    const oldKid = b.ctx.keys.signer().kid;
    const kek = (b.ctx as typeof b.ctx & { kek: Kek }).kek;
    await rotateSigningKey(b.ctx.store, kek, b.clock, 600);
    await b.ctx.keys.load();
    b.clock.advance(600_001);
    expect(await retireExpiredKeys(b.ctx.store, b.clock.now(), b.ctx.revocations)).toEqual([oldKid]);
    await b.ctx.keys.load();
    const newKeys = await localKeySource(b.ctx.keys.jwks());

    for (const [stream, tenant] of [
      [mine, b.tenant.id],
      [theirs, other.tenant.id],
    ] as const) {
      const message = await stream.nextOf('revocation');
      expect(message.id).toBe('1');
      expect(await feed(0, tenant, newKeys).verifyEvent(message.data)).toMatchObject({
        seq: 1,
        event: { type: 'key_retired', data: { kid: oldKid } },
      });
    }
    // A second sweep retires nothing and appends nothing.
    expect(await retireExpiredKeys(b.ctx.store, b.clock.now(), b.ctx.revocations)).toEqual([]);
  });

  it('ends open streams cleanly when the broker shuts down, without holding up the shutdown', async () => {
    const first = await follow(pep);
    const second = await follow(pep);
    await first.nextOf('heartbeat');
    await second.nextOf('heartbeat');
    expect(b.ctx.revocations.listenerCount(b.tenant.id)).toBe(2);

    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([
      b.app.close().then(() => 'closed'),
      new Promise((resolve) => {
        timer = setTimeout(() => resolve('hung'), 5000);
      }),
    ]);
    clearTimeout(timer);
    expect(closed).toBe('closed');
    await first.waitForEnd();
    await second.waitForEnd();
    expect(b.ctx.revocations.listenerCount(b.tenant.id)).toBe(0);
  });

  it('stops a stream when its PEP disconnects', async () => {
    const stream = await follow(pep);
    await stream.nextOf('heartbeat');
    expect(b.ctx.revocations.listenerCount(b.tenant.id)).toBe(1);
    stream.close();
    await eventually(() => b.ctx.revocations.listenerCount(b.tenant.id) === 0);
  });
});
