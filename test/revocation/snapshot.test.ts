import { type KeySource, localKeySource, RevocationFeedVerifier, RevocationMirror } from '@tether-broker/pep';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { BoundSession } from '../../packages/client/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { openSse, type SseStream, untilHeartbeat } from '../support/sse.js';
import { describeEachStore } from '../support/stores.js';

/** A stream this many events behind the head (or more) starts from a snapshot. */
const BEHIND = 3;

/**
 * PEPs that start far behind the head (from 0, as a fleet does when it first starts) are sent
 * one compact snapshot standing for the head, then only what comes after: not every event.
 * The snapshot carries ended sessions as the tenant's status lists, so it must judge the real
 * tokens of those sessions exactly as the events would have.
 */
describeEachStore('revocation snapshots for PEPs far behind', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let base: string;
  let pep: Actor;
  let keys: KeySource;
  const streams: SseStream[] = [];
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), {
      config: { heartbeatIntervalMs: 50, revocationSnapshotBehind: BEHIND },
    });
    s = await setUpScenario(b);
    pep = await b.principal('edge-pep', 'service', ['pep']);
    keys = await localKeySource(b.ctx.keys.jwks());
    base = await b.app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterEach(async () => {
    for (const stream of streams.splice(0)) stream.close();
    await b.close();
  });

  async function follow(after = 0): Promise<SseStream> {
    const stream = await openSse(`${base}/v1/events?after=${after}`, {
      authorization: `Bearer ${await pep.client.bearerToken()}`,
    });
    streams.push(stream);
    return stream;
  }

  function feed(position = 0) {
    return new RevocationFeedVerifier({
      keys,
      issuer: PUBLIC_URL,
      tenant: b.tenant.id,
      now: () => b.clock.now(),
      heartbeatMaxAgeMs: 10_000,
      position,
    });
  }

  async function liveSession(): Promise<BoundSession> {
    const request = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-1',
      justification: 'release',
      duration: 1800,
    });
    return BoundSession.activate(s.pipeline.client, request.id);
  }

  /** What the PEP's mirror asks about a session's current access token. */
  function query(session: BoundSession) {
    const token = session.tokens.accessToken;
    const claims = decodeJwt(token) as {
      sid: string;
      iat: number;
      status: { status_list: { uri: string; idx: number } };
    };
    return {
      sid: claims.sid,
      iat: claims.iat,
      kid: decodeProtectedHeader(token).kid as string,
      status: claims.status.status_list,
    };
  }

  it('sends a stream that starts far behind one snapshot standing for the head, then only later events', async () => {
    for (let i = 0; i < BEHIND + 2; i++) await (await liveSession()).end('revoked');
    const verifier = feed();
    const { before, heartbeat } = await untilHeartbeat(await follow(0));
    expect(before.map((m) => [m.event, m.id])).toEqual([['snapshot', String(BEHIND + 2)]]);
    const snapshot = await verifier.verifySnapshot(before[0]!.data);
    expect(snapshot.seq).toBe(BEHIND + 2);
    expect(await verifier.verifyHeartbeat(heartbeat.data)).toMatchObject({ seq: BEHIND + 2, caughtUp: true });

    // Within the threshold of the head, a stream gets the events themselves.
    const near = await untilHeartbeat(await follow(2));
    expect(near.before.map((m) => [m.event, m.id])).toEqual([
      ['revocation', '3'],
      ['revocation', '4'],
      ['revocation', '5'],
    ]);
  });

  it('judges the real tokens of ended sessions as the events would: by status list long after the end, by id near it', async () => {
    const endedLongAgo = [await liveSession(), await liveSession(), await liveSession()];
    for (const session of endedLongAgo) await session.end('revoked');
    // A minute later: these ends are older than the snapshot's skew window.
    b.clock.advance(60_000);
    const endedJustNow = await liveSession();
    await endedJustNow.end('completed');
    const live = await liveSession();

    const verifier = feed();
    const { before, heartbeat } = await untilHeartbeat(await follow(0));
    expect(before.map((m) => m.event)).toEqual(['snapshot']);
    const snapshot = await verifier.verifySnapshot(before[0]!.data);
    // Only the recent end is listed by id; the others travel as status-list bits.
    expect(snapshot.ended.map((e) => e.sid)).toEqual([endedJustNow.info.id]);
    expect([...snapshot.statusLists.values()].length).toBeGreaterThan(0);

    const mirror = new RevocationMirror();
    mirror.applySnapshot(snapshot.seq, snapshot);
    for (const session of endedLongAgo)
      expect(mirror.check(query(session)), session.info.id).toEqual({
        kind: 'session_ended',
        reason: 'ended',
      });
    expect(mirror.check(query(endedJustNow))).toEqual({ kind: 'session_ended', reason: 'completed' });
    expect(mirror.check(query(live))).toBeUndefined();
    expect(await verifier.verifyHeartbeat(heartbeat.data)).toMatchObject({ caughtUp: true });
  });

  it('takes one snapshot for many streams starting together: the same signed bytes for each', async () => {
    for (let i = 0; i < BEHIND + 1; i++) await (await liveSession()).end('revoked');
    const many = await Promise.all(Array.from({ length: 12 }, () => follow(0)));
    const firsts = await Promise.all(many.map((stream) => stream.next()));
    expect(new Set(firsts.map((m) => m.event))).toEqual(new Set(['snapshot']));
    expect(new Set(firsts.map((m) => m.data)).size).toBe(1);
  });
});
