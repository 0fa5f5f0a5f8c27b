import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localKeySource, RevocationFeedVerifier } from '@tether-broker/pep';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, expect, it } from 'vitest';
import type { ConfigInput } from '../../packages/broker/src/config/config.js';
import { readRevocationLog, revocationHead } from '../../packages/broker/src/revocation/log.js';
import { run } from '../../packages/cli/src/program.js';
import {
  BoundSession,
  type BrokerClient,
  BrokerError,
  writeIdentity,
} from '../../packages/client/src/index.js';
import { createEnforcer, type Enforcer, tetherMiddleware } from '../../packages/pep/src/index.js';
import type { TenantCutoffView } from '../../packages/protocol/src/api/index.js';
import { type Actor, injectFetch, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { openSse, type SseStream } from '../support/sse.js';
import { describeEachStore } from '../support/stores.js';

const CUTOFF_REFUSAL = 'the token was issued before the tenant-wide cut-off';

/**
 * `POST /v1/tenant/cutoff` against a real broker, seen from the attacker's side: a token
 * issued before the cut-off is refused by real enforcement points (one following the feed,
 * one starting after it from the log or from a snapshot), whatever the refused caller or the
 * hostile body tried. The broker, the PEPs and the tokens share the broker's manual clock.
 */
describeEachStore('tenant-wide cut-off (POST /v1/tenant/cutoff)', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  let brokerUrl: string;
  let origin: string;
  let server: Server;
  const enforcers: Enforcer[] = [];
  const streams: SseStream[] = [];
  afterAll(() => fixture.cleanup());

  /** A broker, the scenario, a PEP principal, and a resource server guarded by `deploy`. */
  async function start(config: Partial<ConfigInput> = {}): Promise<void> {
    b = await startTestBroker(await fixture.open(), { config: { heartbeatIntervalMs: 50, ...config } });
    s = await setUpScenario(b);
    pep = await b.principal('edge-pep', 'service', ['pep']);
    brokerUrl = await b.app.listen({ port: 0, host: '127.0.0.1' });
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await s.admin.call('PATCH', '/v1/privileges/deploy', { audiences: [origin] });
    server.on('request', async (req, res) => {
      const enforcer = enforcers.at(-1);
      if (!enforcer) return res.writeHead(503).end();
      tetherMiddleware(enforcer, () => ({ action: 'deploy:release', resource: 'app/web' }))(req, res, () =>
        res.writeHead(200).end('ok'),
      );
    });
  }

  afterEach(async () => {
    for (const stream of streams.splice(0)) stream.close();
    for (const enforcer of enforcers.splice(0)) await enforcer.close();
    await new Promise((resolve) => server.close(resolve));
    await b.app.close();
  });

  /** A real PEP following the broker's feed from position 0, once it is fresh. */
  async function freshEnforcer(): Promise<Enforcer> {
    const enforcer = createEnforcer({
      broker: brokerUrl,
      issuer: PUBLIC_URL,
      audience: origin,
      tenant: b.tenant.id,
      publicBaseUrl: origin,
      identity: { principal: pep.identity.principal, key: pep.identity.key },
      now: () => b.clock.now(),
      reconnect: { minDelayMs: 20, maxDelayMs: 200 },
      decisions: false,
    });
    enforcers.push(enforcer);
    enforcer.start();
    await eventually(() => enforcer.state().fresh, 5000, 'a fresh PEP');
    return enforcer;
  }

  async function session(): Promise<BoundSession> {
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-1',
      justification: 'release',
      duration: 900,
    });
    return BoundSession.activate(s.pipeline.client, created.id);
  }

  /** The session's current token at the guarded resource: its status and refusal. */
  async function use(sess: BoundSession): Promise<{ status: number; refusal: string }> {
    const answer = await sess.fetch(`${origin}/releases/web`, { method: 'POST' });
    await answer.body?.cancel();
    return { status: answer.status, refusal: answer.headers.get('www-authenticate') ?? '' };
  }

  function cutoff(client: BrokerClient, body: unknown): Promise<TenantCutoffView> {
    return client.call<TenantCutoffView>('POST', '/v1/tenant/cutoff', body);
  }

  /**
   * What a refused call must leave as it was: the tenant's log, its audit trail (but for the
   * `auth.token_issued` records of the callers' own API tokens), its sessions.
   */
  async function stateOf(tenantId = b.tenant.id) {
    const sessions = await b.ctx.store.db
      .selectFrom('sessions')
      .select(['id', 'state'])
      .where('tenant_id', '=', tenantId)
      .orderBy('id')
      .execute();
    const audit = await b.ctx.store.db
      .selectFrom('audit_records')
      .select(['seq', 'action'])
      .where('tenant_id', '=', tenantId)
      .where('action', '!=', 'auth.token_issued')
      .orderBy('seq')
      .execute();
    return { log: await revocationHead(b.ctx.store, tenantId), audit, sessions };
  }

  async function refusedWith(p: Promise<unknown>): Promise<{ status: number; code: string }> {
    try {
      await p;
    } catch (err) {
      if (err instanceof BrokerError) return { status: err.status, code: err.code };
      throw err;
    }
    throw new Error('expected the broker to refuse the call');
  }

  it('a running PEP refuses every token issued before the cut-off (401, the cut-off), and the refreshed token passes', async () => {
    await start();
    const enforcer = await freshEnforcer();
    const first = await session();
    const second = await session();
    expect((await use(first)).status).toBe(200);
    const stolen = first.tokens.accessToken;

    const answer = await cutoff(s.admin, { reason: 'signing key suspected leaked' });
    const now = b.clock.now();
    // The second after now: a token issued earlier within this second is refused too.
    expect(answer).toEqual({
      seq: expect.any(Number),
      before: Math.floor(now / 1000) + 1,
      ended_sessions: [],
    });
    await eventually(() => enforcer.state().position >= answer.seq, 5000, 'the PEP applying the cut-off');

    for (const sess of [first, second]) {
      const refused = await use(sess);
      expect(refused.status).toBe(401);
      expect(refused.refusal).toContain('error="invalid_token"');
      expect(refused.refusal).toContain(CUTOFF_REFUSAL);
    }
    // Not ended: the holders refresh, in the same second, and get tokens dated past the cut-off.
    await first.refresh();
    await second.refresh();
    expect(first.tokens.accessToken).not.toBe(stolen);
    expect(decodeJwt(first.tokens.accessToken).iat).toBe(answer.before);
    expect((await use(first)).status).toBe(200);
    expect((await use(second)).status).toBe(200);
    // A session started after the cut-off passes at once.
    expect((await use(await session())).status).toBe(200);

    // The log holds the event; the audit record says why and when, and holds no token.
    const log = await readRevocationLog(b.ctx.store, b.tenant.id, answer.seq - 1, 10);
    expect(log[0]?.event).toEqual({ type: 'tenant_cutoff', data: { before: answer.before } });
    const audit = await b.ctx.store.db
      .selectFrom('audit_records')
      .selectAll()
      .where('tenant_id', '=', b.tenant.id)
      .where('action', '=', 'tenant.cutoff')
      .execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]?.actor).toBe(b.admin.principal.id);
    expect(JSON.parse(audit[0]?.details ?? '{}')).toMatchObject({
      reason: 'signing key suspected leaked',
      before: answer.before,
    });
    expect(JSON.stringify(audit)).not.toContain('eyJ');
  });

  it('a PEP that starts after the cut-off refuses the old token, from the log', async () => {
    await start();
    const sess = await session();
    const old = await session();
    const answer = await cutoff(s.admin, { reason: 'incident 42' });
    await sess.refresh();
    b.clock.advance(3000);
    await freshEnforcer();
    const refused = await use(old);
    expect(refused.status).toBe(401);
    expect(refused.refusal).toContain(CUTOFF_REFUSAL);
    expect((await use(sess)).status).toBe(200);
    expect(answer.seq).toBeGreaterThan(0);
  });

  it('a PEP that starts after the cut-off refuses the old token, from a snapshot', async () => {
    // Every stream that starts behind the head starts from a snapshot.
    await start({ revocationSnapshotBehind: 1 });
    const sess = await session();
    const old = await session();
    // Two events, so that a stream from 0 is more than one behind.
    await (await session()).end();
    const answer = await cutoff(s.admin, { reason: 'incident 43' });
    await sess.refresh();
    b.clock.advance(3000);

    // The feed from 0 is one snapshot carrying the cut-off, not the events.
    const stream = await openSse(`${brokerUrl}/v1/events?after=0`, {
      authorization: `Bearer ${await pep.client.bearerToken()}`,
    });
    streams.push(stream);
    const first = await stream.nextOf('snapshot');
    const verifier = new RevocationFeedVerifier({
      keys: await localKeySource(b.ctx.keys.jwks()),
      issuer: PUBLIC_URL,
      tenant: b.tenant.id,
      now: () => b.clock.now(),
      heartbeatMaxAgeMs: 10_000,
      position: 0,
    });
    const snapshot = await verifier.verifySnapshot(first.data);
    expect(snapshot.seq).toBeGreaterThanOrEqual(answer.seq);
    expect(snapshot.cutoff).toBe(answer.before);

    await freshEnforcer();
    const refused = await use(old);
    expect(refused.status).toBe(401);
    expect(refused.refusal).toContain(CUTOFF_REFUSAL);
    expect((await use(sess)).status).toBe(200);
  });

  it('end_sessions: true ends every live session of the tenant (state, events, audit), reason tenant_cutoff', async () => {
    await start();
    const enforcer = await freshEnforcer();
    const a = await session();
    const c = await session();
    const done = await session();
    await done.end();
    const answer = await cutoff(s.admin, { reason: 'tenant compromised', end_sessions: true });
    expect([...answer.ended_sessions].sort()).toEqual([a.info.id, c.info.id].sort());

    for (const sess of [a, c]) {
      const view = await s.admin.call<{ state: string; end_reason: string }>(
        'GET',
        `/v1/sessions/${sess.info.id}`,
      );
      expect(view).toMatchObject({ state: 'ended', end_reason: 'tenant_cutoff' });
      // Ended, not only cut off: no refresh brings it back.
      expect(await refusedWith(sess.refresh())).toMatchObject({ status: 400, code: 'invalid_grant' });
    }
    const events = await readRevocationLog(b.ctx.store, b.tenant.id, 0, 100);
    const ends = events.filter(
      (e) => e.event.type === 'session_ended' && e.event.data.reason === 'tenant_cutoff',
    );
    expect(ends.map((e) => (e.event.data as { sid: string }).sid).sort()).toEqual(
      answer.ended_sessions.sort(),
    );
    // The sessions' ends come before the cut-off, in the same transaction.
    expect(events.at(-1)).toMatchObject({ seq: answer.seq, event: { type: 'tenant_cutoff' } });
    expect(Math.max(...ends.map((e) => e.seq))).toBeLessThan(answer.seq);
    const audits = await b.ctx.store.db
      .selectFrom('audit_records')
      .select(['action', 'target', 'details'])
      .where('tenant_id', '=', b.tenant.id)
      .where('action', 'in', ['session.ended', 'tenant.cutoff'])
      .orderBy('seq')
      .execute();
    expect(
      audits
        .filter((r) => JSON.parse(r.details).reason === 'tenant_cutoff')
        .map((r) => r.target)
        .sort(),
    ).toEqual(answer.ended_sessions.sort());
    expect(JSON.parse(audits.at(-1)?.details ?? '{}')).toMatchObject({
      end_sessions: true,
      ended_sessions: 2,
    });

    await eventually(() => enforcer.state().position >= answer.seq, 5000, 'the PEP applying the cut-off');
    expect((await use(a)).status).toBe(401);
    // Nothing live is left to end: a second cut-off ends none.
    expect((await cutoff(s.admin, { reason: 'again', end_sessions: true })).ended_sessions).toEqual([]);
  });

  it('refuses a non-admin (403), an anonymous caller (401) and the admin of another tenant, and changes nothing here', async () => {
    await start();
    const enforcer = await freshEnforcer();
    const sess = await session();
    const other = await startTestBroker(b.ctx.store, { tenantName: 'globex', reuse: b });
    const otherAdmin = other.client(other.adminIdentity);
    const unchanged = await stateOf();
    const otherBefore = await stateOf(other.tenant.id);

    for (const caller of [s.operator, s.pipeline, pep])
      expect(await refusedWith(cutoff(caller.client, { reason: 'mine now', end_sessions: true }))).toEqual({
        status: 403,
        code: 'forbidden',
      });
    const anonymous = await b.app.inject({
      method: 'POST',
      url: '/v1/tenant/cutoff',
      payload: { reason: 'mine now', end_sessions: true },
    });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.headers['content-type']).toContain('application/problem+json');
    // There is no naming another tenant: the cut-off is always the caller's own.
    expect(
      await refusedWith(cutoff(otherAdmin, { reason: 'theirs', end_sessions: true, tenant: b.tenant.id })),
    ).toEqual({ status: 400, code: 'invalid_request' });
    expect(await stateOf()).toEqual(unchanged);
    expect(await stateOf(other.tenant.id)).toEqual(otherBefore);

    // Their own cut-off touches their tenant alone: our log, chain, sessions and tokens stay.
    const theirs = await cutoff(otherAdmin, { reason: 'their incident', end_sessions: true });
    expect(await revocationHead(b.ctx.store, other.tenant.id)).toBe(theirs.seq);
    expect(await stateOf()).toEqual(unchanged);
    // A heartbeat dated after their cut-off reached our PEP, and it had nothing new to apply.
    b.clock.advance(1000);
    const later = b.clock.now();
    await eventually(() => (enforcer.state().freshAt ?? 0) >= later, 5000, 'a later heartbeat');
    expect(enforcer.state().position).toBe(unchanged.log);
    expect((await use(sess)).status).toBe(200);
  });

  it('refuses bad bodies with the typed 400, and changes nothing', async () => {
    await start();
    await session();
    const unchanged = await stateOf();
    const token = await s.admin.bearerToken();
    const bodies: unknown[] = [
      {},
      { end_sessions: true },
      { reason: '' },
      { reason: '   ' },
      { reason: 'x'.repeat(201) },
      { reason: 'ok', note: 'an unknown field' },
      { reason: 'ok', before: 0 },
      { reason: { text: 'ok' } },
      { reason: 'ok', end_sessions: 'maybe' },
      { reason: 'ok', end_sessions: { yes: true } },
      [],
      'reason=ok',
    ];
    for (const body of bodies) {
      const answer = await b.app.inject({
        method: 'POST',
        url: '/v1/tenant/cutoff',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        payload: JSON.stringify(body),
      });
      expect(answer.statusCode, JSON.stringify(body)).toBe(400);
      expect(answer.headers['content-type']).toContain('application/problem+json');
      expect(answer.json()).toMatchObject({ status: 400, code: 'invalid_request' });
    }
    const noBody = await b.app.inject({
      method: 'POST',
      url: '/v1/tenant/cutoff',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(noBody.statusCode).toBe(400);
    expect(await stateOf()).toEqual(unchanged);
    // The largest reason allowed is taken.
    expect((await cutoff(s.admin, { reason: 'x'.repeat(200) })).before).toBeGreaterThan(0);
    // The route and its schemas are in the API's description.
    const spec = (await b.app.inject({ url: '/openapi.json' })).json() as {
      paths: Record<string, { post?: { requestBody?: { content: Record<string, { schema: unknown }> } } }>;
    };
    expect(
      spec.paths['/v1/tenant/cutoff']?.post?.requestBody?.content['application/json']?.schema,
    ).toMatchObject({
      required: ['reason'],
      additionalProperties: false,
      properties: { reason: { maxLength: 200 }, end_sessions: { type: 'boolean' } },
    });
  });

  it('an earlier-dated second cut-off cannot move it back: it refuses what the first did, and what was issued since', async () => {
    await start();
    const old = await session();
    b.clock.advance(2000);
    const first = await cutoff(s.admin, { reason: 'first' });
    const between = await session();
    expect(decodeJwt(between.tokens.accessToken).iat).toBe(first.before);

    // A clock that went back (another replica, a corrected clock): earlier than the first cut-off.
    b.clock.advance(-1500);
    const second = await cutoff(s.admin, { reason: 'second' });
    expect(second.seq).toBeGreaterThan(first.seq);
    expect(second.before).toBeGreaterThan(first.before);
    const after = await session();
    expect(decodeJwt(after.tokens.accessToken).iat).toBe(second.before);

    await freshEnforcer();
    for (const sess of [old, between]) {
      const refused = await use(sess);
      expect(refused.status).toBe(401);
      expect(refused.refusal).toContain(CUTOFF_REFUSAL);
    }
    expect((await use(after)).status).toBe(200);
  });

  it('tether tenant cutoff: an admin cuts off (and ends sessions) from the CLI; others are refused', async () => {
    await start();
    const sess = await session();
    const home = mkdtempSync(join(tmpdir(), 'tether-cli-cutoff-'));
    try {
      const tether = async (identity: Actor['identity'], ...args: string[]) => {
        const file = join(home, `${identity.principal}.json`);
        writeIdentity(file, identity);
        const out: string[] = [];
        const err: string[] = [];
        const code = await run(['node', 'tether', '--identity', file, ...args], {
          stdout: { write: (chunk) => out.push(String(chunk)) },
          stderr: { write: (chunk) => err.push(String(chunk)) },
          fetch: injectFetch(b.app),
          now: () => b.clock.now(),
          env: { TETHER_HOME: home },
        });
        return { code, stdout: out.join(''), stderr: err.join('') };
      };
      const unchanged = await stateOf();
      const refused = await tether(s.operator.identity, 'tenant', 'cutoff', '--reason', 'mine now');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('forbidden');
      const blank = await tether(b.adminIdentity, 'tenant', 'cutoff', '--reason', ' ');
      expect(blank.code).toBe(2);
      expect(await tether(b.adminIdentity, 'tenant', 'cutoff')).toMatchObject({ code: 2 });
      expect(await stateOf()).toEqual(unchanged);

      const human = await tether(b.adminIdentity, 'tenant', 'cutoff', '--reason', 'from the CLI');
      expect(human.code).toBe(0);
      expect(human.stdout).toContain('of the revocation log');
      const json = await tether(
        b.adminIdentity,
        '--json',
        'tenant',
        'cutoff',
        '--reason',
        'again',
        '--end-sessions',
      );
      expect(json.code).toBe(0);
      const answer = JSON.parse(json.stdout) as TenantCutoffView;
      expect(answer.ended_sessions).toEqual([sess.info.id]);
      expect(await revocationHead(b.ctx.store, b.tenant.id)).toBe(answer.seq);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
