import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPair, SignJWT } from 'jose';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { endSession } from '../../packages/broker/src/core/end-session.js';
import { createDpopProof } from '../../packages/client/src/dpop-proof.js';
import { BoundSession } from '../../packages/client/src/index.js';
import {
  createEnforcer,
  type Enforcer,
  type SseMessage,
  silentLogger,
} from '../../packages/pep/src/index.js';
import { SseDecoder } from '../../packages/pep/src/sse-decoder.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/** What the hostile relay does to each message of the revocation stream. */
type Tamper = (message: SseMessage) => Promise<SseMessage | undefined> | SseMessage | undefined;

/**
 * A relay between the enforcement point and the broker that an attacker controls (a
 * compromised proxy): it passes everything through, but rewrites the revocation stream with
 * `tamper` — dropping, replaying or forging messages.
 */
async function startRelay(target: string, tamper: () => Tamper): Promise<{ url: string; server: Server }> {
  const upstream = new URL(target);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const out = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        if (!req.url?.startsWith('/v1/events') || answer.statusCode !== 200) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        res.writeHead(200, answer.headers);
        const decoder = new SseDecoder();
        const rewrite = tamper();
        let chain = Promise.resolve();
        answer.setEncoding('utf8');
        answer.on('data', (chunk: string) => {
          for (const message of decoder.push(chunk)) {
            chain = chain.then(async () => {
              const sent = await rewrite(message);
              if (sent === undefined) return;
              res.write(
                `${sent.id === undefined ? '' : `id: ${sent.id}\n`}event: ${sent.event}\ndata: ${sent.data}\n\n`,
              );
            });
          }
        });
        answer.on('end', () => void chain.then(() => res.end()));
        res.on('close', () => answer.destroy());
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const BUDGET_MS = 10_000;

/**
 * The revocation feed from the attacker's side: a relay that suppresses revocations, freezes
 * heartbeats or forges them can at most delay enforcement until the staleness budget passes —
 * after which the PEP denies everything — and never make it honour a revoked session longer.
 */
describeEachStore('revocation feed under attack', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  let brokerUrl: string;
  let relay: Server | undefined;
  let enforcer: Enforcer | undefined;
  const origin = 'https://svc.example';
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), { config: { heartbeatIntervalMs: 30 } });
    s = await setUpScenario(b);
    pep = await b.principal('edge-pep', 'service', ['pep']);
    brokerUrl = await b.app.listen({ port: 0, host: '127.0.0.1' });
    await s.admin.call('PATCH', '/v1/privileges/deploy', { audiences: [origin] });
  });
  afterEach(async () => {
    await enforcer?.close();
    if (relay) await new Promise((resolve) => relay?.close(resolve));
    relay = undefined;
    await b.close();
  });

  async function throughRelay(
    tamper: () => Tamper,
    fallback?: { statusList?: boolean; introspection?: boolean },
    failures: string[] = [],
  ): Promise<Enforcer> {
    const started = await startRelay(brokerUrl, tamper);
    relay = started.server;
    enforcer = createEnforcer({
      broker: started.url,
      issuer: PUBLIC_URL,
      audience: origin,
      tenant: b.tenant.id,
      publicBaseUrl: origin,
      identity: { principal: pep.identity.principal, key: pep.identity.key },
      now: () => b.clock.now(),
      stalenessBudgetMs: BUDGET_MS,
      reconnect: { minDelayMs: 20, maxDelayMs: 100 },
      decisions: false,
      // Every reason the PEP gave for dropping the stream, in order: the PEP's own staleness
      // watchdog and a refused message can both end a connection, so a test looks for its cause.
      log: { ...silentLogger, warn: (obj) => failures.push(String((obj as { err?: unknown }).err)) },
      ...(fallback ? { fallback } : {}),
    });
    enforcer.start();
    await eventually(() => enforcer?.state().fresh === true);
    return enforcer;
  }

  async function call(pepUnderTest: Enforcer, session: BoundSession) {
    const url = `${origin}/releases/web`;
    const proof = await createDpopProof(session.key, {
      method: 'POST',
      url,
      accessToken: session.tokens.accessToken,
      now: b.clock.now(),
    });
    return pepUnderTest.authorize({
      method: 'POST',
      url: '/releases/web',
      headers: { authorization: `DPoP ${session.tokens.accessToken}`, dpop: proof },
      action: 'deploy:release',
      resource: 'app/web',
    });
  }

  async function newSession(): Promise<BoundSession> {
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-9',
      justification: 'release',
      duration: 900,
    });
    return BoundSession.activate(s.pipeline.client, created.id);
  }

  it('a relay that drops revocation events gets the PEP to fail closed once the budget passes', async () => {
    const p = await throughRelay(() => (m) => (m.event === 'revocation' ? undefined : m));
    const victim = await newSession();
    expect((await call(p, victim)).allow).toBe(true);
    await endSession(b.ctx, b.admin, victim.info.id, 'revoked', 'incident');
    // The heartbeats that follow name a sequence number the PEP never received: not caught up.
    b.clock.advance(BUDGET_MS + 1000);
    await eventually(() => !p.state().fresh);
    const denied = await call(p, victim);
    expect(denied).toMatchObject({ allow: false, status: 503, code: 'revocation_state_stale' });
    // And it stays that way: the broker keeps saying there is an event it has not seen.
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect((await call(p, victim)).code).toBe('revocation_state_stale');
  });

  it('a late heartbeat is skipped, not fatal; a stream of only late ones is dropped after a budget', async () => {
    // A loaded broker or PEP host delivers authentic heartbeats late. Dropping the stream for
    // one would make the PEP start over (connection, snapshot) and add to the load.
    let streams = 0;
    let hold = false;
    let held: SseMessage | undefined;
    let beats = 0;
    const p = await throughRelay(() => {
      streams++;
      return (m) => {
        if (m.event !== 'heartbeat') return m;
        beats++;
        if (!hold) held = m;
        return hold ? held : m;
      };
    });
    /** Lets a few more heartbeats reach the PEP (one every 30 ms) at the clock's current time. */
    const someBeats = async () => {
      const from = beats;
      await eventually(() => beats >= from + 3);
      await new Promise((resolve) => setTimeout(resolve, 60));
    };
    expect(streams).toBe(1);
    hold = true;
    // 6 s on, the held heartbeat is old but within the budget: accepted.
    b.clock.advance(6000);
    await someBeats();
    // 11 s on, it is past the budget: skipped (the PEP goes stale), the stream stays.
    b.clock.advance(5000);
    await eventually(() => !p.state().fresh);
    await someBeats();
    expect(p.state().connected).toBe(true);
    expect(streams).toBe(1);
    // Timely heartbeats again: fresh on the same stream.
    hold = false;
    await eventually(() => p.state().fresh);
    expect(streams).toBe(1);
    // Only late heartbeats for longer than a whole budget: the stream is dropped and reopened.
    hold = true;
    b.clock.advance(BUDGET_MS + 1000);
    await eventually(() => streams > 1);
    expect(p.state().lastError).toMatch(/older than/);
  });

  it('a relay that replays an old heartbeat forever cannot keep the PEP fresh', async () => {
    let frozen: SseMessage | undefined;
    const p = await throughRelay(() => (m) => {
      if (m.event !== 'heartbeat') return m;
      frozen ??= m;
      return frozen;
    });
    const victim = await newSession();
    await endSession(b.ctx, b.admin, victim.info.id, 'revoked', 'incident');
    b.clock.advance(BUDGET_MS + 1000);
    await eventually(() => !p.state().fresh);
    expect((await call(p, victim)).code).toMatch(/^(revocation_state_stale|invalid_token)$/);
  });

  it('a forged heartbeat (signed with a key that is not the broker’s) is refused and confers nothing', async () => {
    const { privateKey } = await generateKeyPair('Ed25519');
    let forge = false;
    const failures: string[] = [];
    const p = await throughRelay(
      () => async (m) => {
        if (m.event !== 'heartbeat' || !forge) return m;
        const data = await new SignJWT({
          iss: PUBLIC_URL,
          tenant: b.tenant.id,
          seq: 0,
          iat: b.clock.now() / 1000,
        })
          .setProtectedHeader({ alg: 'EdDSA', typ: 'tether-heartbeat+jwt', kid: 'attacker' })
          .sign(privateKey);
        return { ...m, data };
      },
      undefined,
      failures,
    );
    const victim = await newSession();
    forge = true;
    await endSession(b.ctx, b.admin, victim.info.id, 'revoked', 'incident');
    b.clock.advance(BUDGET_MS + 1000);
    // The forged heartbeat is what the PEP refuses (its staleness watchdog may also fire first).
    await eventually(() => failures.some((f) => /kid|signing key|signature/.test(f)));
    await eventually(() => !p.state().fresh);
    const denied = await call(p, victim);
    expect(denied.allow).toBe(false);
  });

  it('a forged revocation event cannot end a session it names (and breaks no order)', async () => {
    const { privateKey } = await generateKeyPair('Ed25519');
    let injected = false;
    let seen = 0;
    const kept = await newSession();
    const p = await throughRelay(() => async (m) => {
      if (m.id !== undefined) seen = Number(m.id);
      if (m.event !== 'heartbeat' || injected) return m;
      injected = true;
      const data = await new SignJWT({
        iss: PUBLIC_URL,
        tenant: b.tenant.id,
        seq: seen + 1,
        type: 'session_ended',
        data: { sid: kept.info.id, reason: 'revoked', session_exp: 4_102_444_800 },
        iat: b.clock.now() / 1000,
      })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'tether-event+jwt', kid: 'attacker' })
        .sign(privateKey);
      return { id: String(seen + 1), event: 'revocation', data };
    });
    // The forgery is refused, the connection dropped and resumed; the session stays live.
    await eventually(() => injected && p.state().lastError !== undefined);
    await eventually(() => p.state().connected && p.state().fresh);
    expect(p.state().position).toBe(seen);
    expect((await call(p, kept)).allow).toBe(true);
  });

  for (const fallback of [{ statusList: true }, { introspection: true }]) {
    it(`a stale PEP configured with ${Object.keys(fallback)[0]} fallback answers per token instead of denying all`, async () => {
      let stall = false;
      // Heartbeats stop (a stuck stream): the mirror goes stale, but the broker's API answers.
      const p = await throughRelay(() => (m) => (stall ? undefined : m), fallback);
      const kept = await newSession();
      const revoked = await newSession();
      stall = true;
      await endSession(b.ctx, b.admin, revoked.info.id, 'revoked', 'incident');
      b.clock.advance(BUDGET_MS + 1000);
      expect(p.state().fresh).toBe(false);
      expect(await call(p, kept)).toMatchObject({ allow: true, code: 'ok' });
      const refused = await call(p, revoked);
      expect(refused).toMatchObject({ allow: false, status: 401, code: 'invalid_token' });
      expect(refused.description).toBe('the token has been revoked (its status says so)');
    });
  }
});
