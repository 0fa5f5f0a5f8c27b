import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localKeySource, RevocationFeedVerifier } from '@tether-broker/pep';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { pino } from 'pino';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { openBroker, type RunningBroker, startBroker } from '../../packages/broker/src/broker.js';
import type { ConfigInput } from '../../packages/broker/src/config/config.js';
import type { BrokerContext } from '../../packages/broker/src/core/context.js';
import { buildApp } from '../../packages/broker/src/http/app.js';
import { RevocationNotifyListener } from '../../packages/broker/src/revocation/pg-notify.js';
import { openStore, type Store } from '../../packages/broker/src/store/database.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { openSse, type SseStream } from '../support/sse.js';
import { describeOnPostgres } from '../support/stores.js';

/**
 * Two broker replicas on one PostgreSQL schema, in this process: replica A is driven through
 * its app (the session is ended there), replica B is a second broker with its own store
 * handle, its own fanout and its own LISTEN connection, and the PEP follows B's stream over
 * HTTP. A's in-process wake-up cannot reach B: only the database can.
 */

/** Long enough that an event arriving within a test's deadline was not fetched by B's heartbeat poll. */
const NO_HEARTBEAT_MS = 60_000;

/** A backoff sleep the test releases by hand (or the listener's close does). */
class HeldSleep {
  readonly requested: number[] = [];
  readonly #pending: (() => void)[] = [];
  readonly sleep = (ms: number, signal: AbortSignal): Promise<void> =>
    new Promise((resolve) => {
      this.requested.push(ms);
      this.#pending.push(resolve);
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  release(): void {
    for (const resolve of this.#pending.splice(0)) resolve();
  }
}

interface ReplicaB {
  ctx: BrokerContext;
  url: string;
  listener: RevocationNotifyListener;
  logs: string[];
}

describeOnPostgres('revocation fan-out across broker replicas', (fixture) => {
  let storeA: Store & { location: string; pgSchema?: string };
  let a: TestBroker;
  let s: Scenario;
  let pep: Actor;
  /** Both replicas' key-encryption key: they read each other's signing keys from the database. */
  let kek: string;
  const cleanups: (() => Promise<void>)[] = [];
  const streams: SseStream[] = [];
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    kek = randomBytes(32).toString('base64url');
    storeA = await fixture.open();
    a = await startTestBroker(storeA, { config: { kek, heartbeatIntervalMs: NO_HEARTBEAT_MS } });
    s = await setUpScenario(a);
    pep = await a.principal('edge-pep', 'service', ['pep']);
  });
  afterEach(async () => {
    for (const stream of streams.splice(0)) stream.close();
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await a.close();
  });

  /** A second handle on A's schema and a broker context on it, as another process would open. */
  async function openReplicaContext(config: Partial<ConfigInput>, logs: string[]): Promise<BrokerContext> {
    const store = openStore({ location: storeA.location, pgSchema: storeA.pgSchema as string });
    return openBroker({
      config: {
        publicUrl: PUBLIC_URL,
        dataDir: mkdtempSync(join(tmpdir(), 'tether-replica-')),
        kek,
        logLevel: 'debug',
        host: '127.0.0.1',
        port: 0,
        // PUBLIC_URL is http://broker.test: not loopback, so plain http must be allowed explicitly.
        allowInsecureHttp: true,
        ...config,
      },
      clock: a.clock,
      logger: pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) }),
      store,
    });
  }

  /** Replica B as `tether server` runs it: startBroker, with its LISTEN connection. */
  async function startReplicaB(
    config: Partial<ConfigInput> = {},
  ): Promise<ReplicaB & { running: RunningBroker }> {
    const logs: string[] = [];
    const ctx = await openReplicaContext(config, logs);
    const running = await startBroker(ctx);
    cleanups.push(() => running.stop());
    if (running.revocationListener === undefined) throw new Error('replica B on PostgreSQL must listen');
    return { ctx, url: running.url, listener: running.revocationListener, logs, running };
  }

  /** Replica B with a listener whose reconnection waits on `held`, so a test can keep it deaf. */
  async function startDeafenableReplicaB(held: HeldSleep, config: Partial<ConfigInput>): Promise<ReplicaB> {
    const logs: string[] = [];
    const ctx = await openReplicaContext(config, logs);
    const listener = await RevocationNotifyListener.start({
      store: ctx.store,
      fanout: ctx.revocations,
      logger: ctx.logger,
      sleep: held.sleep,
    });
    if (listener === undefined) throw new Error('replica B on PostgreSQL must listen');
    const app: FastifyInstance = await buildApp(ctx);
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(async () => {
      await app.close();
      await listener.close();
      await ctx.store.close();
    });
    return { ctx, url, listener, logs };
  }

  /** The PEP follows replica B's stream; answers the stream and a verifier of B's signatures. */
  async function followB(b: ReplicaB): Promise<{ stream: SseStream; feed: RevocationFeedVerifier }> {
    // The PEP's token was issued by replica A: any replica honours what another issued.
    const stream = await openSse(`${b.url}/v1/events`, {
      authorization: `Bearer ${await pep.client.bearerToken()}`,
    });
    streams.push(stream);
    expect(stream.status).toBe(200);
    const feed = new RevocationFeedVerifier({
      keys: await localKeySource(b.ctx.keys.jwks()),
      issuer: PUBLIC_URL,
      tenant: a.tenant.id,
      now: () => a.clock.now(),
      heartbeatMaxAgeMs: 10_000,
      position: 0,
    });
    // The stream opens with a heartbeat: B's stream is idle until something wakes it.
    expect(await feed.verifyHeartbeat((await stream.nextOf('heartbeat')).data)).toMatchObject({ seq: 0 });
    return { stream, feed };
  }

  /** A live session of the pipeline, activated through replica A. */
  async function liveSession(): Promise<BoundSession> {
    const request = await s.pipeline.client.call<{ id: string; state: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-7',
      justification: 'release',
      duration: 1800,
    });
    expect(request.state).toBe('approved');
    return BoundSession.activate(s.pipeline.client, request.id);
  }

  /** The next revocation event on the stream, verified; throws if none comes within `withinMs`. */
  async function nextEndedSid(stream: SseStream, feed: RevocationFeedVerifier, withinMs = 5000) {
    const message = await stream.nextOf('revocation', withinMs);
    const { seq, event } = await feed.verifyEvent(message.data);
    if (event.type !== 'session_ended') throw new Error(`expected session_ended, got ${event.type}`);
    return { seq, sid: event.data.sid, reason: event.data.reason };
  }

  it('a session ended through replica A reaches a PEP on replica B at once, by NOTIFY (not by its heartbeat)', async () => {
    const b = await startReplicaB({ heartbeatIntervalMs: NO_HEARTBEAT_MS });
    expect(b.listener.listening).toBe(true);
    expect(b.listener.channel).toBe(`tether_revocations_${storeA.pgSchema}`);
    const session = await liveSession();
    const { stream, feed } = await followB(b);

    await session.end('revoked');
    // Well within B's 60 s heartbeat: only the database's NOTIFY can have woken B's stream.
    expect(await nextEndedSid(stream, feed)).toEqual({ seq: 1, sid: session.info.id, reason: 'revoked' });
    expect(feed.position).toBe(1);

    // And again, in order, for each one that follows.
    const more = [await liveSession(), await liveSession()];
    for (const next of more) await next.end();
    expect((await nextEndedSid(stream, feed)).sid).toBe(more[0]?.info.id);
    expect((await nextEndedSid(stream, feed)).sid).toBe(more[1]?.info.id);
    expect(feed.position).toBe(3);
  });

  it('a replica that missed the notification catches up from the log at its next heartbeat', async () => {
    const held = new HeldSleep();
    const b = await startDeafenableReplicaB(held, { heartbeatIntervalMs: 200 });
    const session = await liveSession();
    const { stream, feed } = await followB(b);

    // B's LISTEN connection dies and, held by the test, does not come back.
    await sql`select pg_terminate_backend(${b.listener.backendPid})`.execute(storeA.db);
    await eventually(() => !b.listener.listening && held.requested.length === 1);

    await session.end();
    expect(await nextEndedSid(stream, feed)).toMatchObject({ seq: 1, sid: session.info.id });
    // Still deaf: the stream found the event by reading the table at its heartbeat.
    expect(b.listener.listening).toBe(false);
    const beat = await feed.verifyHeartbeat((await stream.nextOf('heartbeat')).data);
    expect(beat).toMatchObject({ seq: 1, caughtUp: true });
  });

  it('a replica whose LISTEN connection dropped reconnects and sends its streams to read what they missed', async () => {
    const held = new HeldSleep();
    const b = await startDeafenableReplicaB(held, { heartbeatIntervalMs: NO_HEARTBEAT_MS });
    const sessions = [await liveSession(), await liveSession()];
    const { stream, feed } = await followB(b);
    const killed = b.listener.backendPid;

    await sql`select pg_terminate_backend(${killed})`.execute(storeA.db);
    await eventually(() => !b.listener.listening && held.requested.length === 1);
    // Ended while B hears nothing: its NOTIFY is lost for B.
    await sessions[0]?.end();

    held.release();
    // No heartbeat for 60 s, no NOTIFY: the reconnection's wake-up is what delivers it.
    expect(await nextEndedSid(stream, feed)).toMatchObject({ seq: 1, sid: sessions[0]?.info.id });
    expect(b.listener.listening).toBe(true);
    expect(b.listener.backendPid).not.toBe(killed);
    expect(b.logs.join('')).toContain("revocation listener reconnected; woke every tenant's streams");

    // The new connection hears the next one as it commits.
    await sessions[1]?.end();
    expect(await nextEndedSid(stream, feed)).toMatchObject({ seq: 2, sid: sessions[1]?.info.id });
  });

  it('replica B stopped: its LISTEN connection is gone with it', async () => {
    const b = await startReplicaB();
    const pid = b.listener.backendPid;
    const alive = async () =>
      (
        await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where pid = ${pid}`.execute(
          storeA.db,
        )
      ).rows[0]?.n;
    expect(await alive()).toBe(1);
    await b.running.stop();
    cleanups.pop();
    expect(b.listener.listening).toBe(false);
    let left = await alive();
    for (let i = 0; i < 200 && left !== 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      left = await alive();
    }
    expect(left).toBe(0);
  });
});
