import type { AuditRecordList, PrincipalView, RequestView, SessionView } from '@tether-broker/protocol/api';
import { decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { sweepOnce } from '../../packages/broker/src/operations/sweeper.js';
import { readRevocationLog } from '../../packages/broker/src/revocation/log.js';
import { BoundSession, createDpopProof } from '../../packages/client/src/index.js';
import {
  type AccessTokenVerifier,
  createAccessTokenVerifier,
  localKeySource,
  ReplayCache,
  RevocationMirror,
} from '../../packages/pep/src/index.js';
import { pepRefusal } from '../support/attacks.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Contract windows on principals (issue 14, item 5): a contractor may request and hold sessions
 * only inside its window; no session outlives the window's end, and at the end its sessions end
 * (`contract_ended`) and its pending requests are cancelled — under the broker's fake clock.
 */

const MINUTE = 60_000;
const FIREWALL = 'https://fw.example';
const iso = (ms: number) => new Date(ms).toISOString();

describeEachStore('contract windows on principals', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let contractor: Actor;
  let gateway: AccessTokenVerifier;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    contractor = await b.principal('carla');
    await s.admin.call('PUT', '/v1/groups/operators/members/carla');
    const jwks = (await b.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json() as {
      keys: JWK[];
    };
    gateway = createAccessTokenVerifier({
      issuer: PUBLIC_URL,
      audience: FIREWALL,
      tenant: b.tenant.id,
      publicBaseUrl: FIREWALL,
      keys: await localKeySource(jwks),
      now: () => b.clock.now(),
      leewaySeconds: 0,
      replayCache: new ReplayCache({ maxEntries: 1000, now: () => b.clock.now() }),
    });
  });
  afterEach(() => b.close());

  const setContract = (contract: Record<string, string | null> | null, client = s.admin) =>
    client.call<PrincipalView>('PATCH', '/v1/principals/carla', { contract });
  const ask = (duration: number, client = contractor.client) =>
    client.call<RequestView>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-14',
      justification: 'contracted firewall work',
      duration,
    });
  const approve = (id: string) =>
    s.approvers[0]!.client.call<RequestView>('POST', `/v1/requests/${id}/approve`);
  const requestView = (id: string) => s.admin.call<RequestView>('GET', `/v1/requests/${id}`);
  const sessionView = (id: string) => s.admin.call<SessionView>('GET', `/v1/sessions/${id}`);
  const extend = (session: BoundSession, by: number) =>
    contractor.client.call<RequestView>('POST', `/v1/sessions/${session.info.id}/extend`, {
      by,
      justification: 'the work is not done',
    });
  const auditOf = async (query: string) =>
    (await s.admin.call<AuditRecordList>('GET', `/v1/audit?${query}&limit=1000`)).records;

  /** An approved firewall-admin session of the contractor, activated now. */
  async function liveSession(duration: number): Promise<BoundSession> {
    const request = await ask(duration);
    await approve(request.id);
    return BoundSession.activate(contractor.client, request.id);
  }

  /** What the firewall's gateway PEP answers a call bearing the session's current access token. */
  async function presentToGateway(session: BoundSession) {
    const token = session.tokens.accessToken;
    const path = '/rules/edge-1';
    return gateway.verify({
      method: 'POST',
      path,
      authorization: `DPoP ${token}`,
      dpop: await createDpopProof(session.key, {
        method: 'POST',
        url: `${FIREWALL}${path}`,
        accessToken: token,
        now: b.clock.now(),
      }),
    });
  }

  /** The PEP's revocation mirror, fed the tenant's log as a PEP would have applied it. */
  async function mirrorCheck(session: BoundSession) {
    const mirror = new RevocationMirror();
    for (const entry of await readRevocationLog(b.ctx.store, b.tenant.id, 0, 10_000))
      mirror.apply(entry.seq, entry.event);
    const token = session.tokens.accessToken;
    const claims = decodeJwt(token);
    return mirror.check({
      sid: String(claims.sid),
      kid: String(decodeProtectedHeader(token).kid),
      iat: Number(claims.iat),
    });
  }

  async function rowCounts() {
    const count = async (table: 'access_requests' | 'sessions') =>
      Number(
        (
          await b.ctx.store.db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    return { requests: await count('access_requests'), sessions: await count('sessions') };
  }

  it('caps a session activated 10 minutes before the contract ends at that end; the gateway refuses it after', async () => {
    const contractEnd = b.clock.now() + 10 * MINUTE;
    expect(await setContract({ ends_at: iso(contractEnd) })).toMatchObject({
      name: 'carla',
      contract: { starts_at: null, ends_at: iso(contractEnd) },
    });

    // Asked and approved for an hour; the session gets what is left of the contract.
    const session = await liveSession(3600);
    expect(session.info.hardExpiresAt).toBe(contractEnd);
    expect(await sessionView(session.info.id)).toMatchObject({
      state: 'active',
      hard_expires_at: iso(contractEnd),
    });
    expect(decodeJwt(session.tokens.accessToken).session_exp).toBe(Math.floor(contractEnd / 1000));
    const activated = (await auditOf(`session=${session.info.id}`)).find(
      (r) => r.action === 'session.activated',
    );
    expect(activated?.details).toMatchObject({ hard_expires_at: contractEnd, capped_at_contract_end: true });

    // Before the end the token works at the gateway; a refresh near the end mints a token that stops at it.
    b.clock.advance(MINUTE);
    expect((await presentToGateway(session)).claims.sid).toBe(session.info.id);
    b.clock.advance(6 * MINUTE);
    await session.refresh();
    expect(decodeJwt(session.tokens.accessToken).exp).toBe(Math.floor(contractEnd / 1000));
    b.clock.advance(2 * MINUTE);
    expect((await presentToGateway(session)).claims.sid).toBe(session.info.id);
    await sweepOnce(b.ctx);
    expect((await sessionView(session.info.id)).state).toBe('active');

    // Past the end: the sweeper ends it `contract_ended`, dated at the contract's end.
    b.clock.set(contractEnd + 1000);
    const refused = await pepRefusal(presentToGateway(session));
    expect(refused.code).toBe('invalid_token');
    await sweepOnce(b.ctx);
    expect(await sessionView(session.info.id)).toMatchObject({
      state: 'ended',
      end_reason: 'contract_ended',
      ended_at: iso(contractEnd),
    });
    expect(await mirrorCheck(session)).toEqual({ kind: 'session_ended', reason: 'contract_ended' });
    expect((await refusal(session.refresh())).code).toBe('invalid_grant');
    const ended = (await auditOf(`session=${session.info.id}`)).find((r) => r.action === 'session.ended');
    expect(ended).toMatchObject({
      actor: 'system',
      outcome: 'success',
      details: { reason: 'contract_ended', contract: { ends_at: iso(contractEnd) } },
    });
    // The contractor can ask for nothing more.
    expect((await refusal(ask(600))).code).toBe('contract_not_active');
  });

  it('caps an extension at the contract end, and refuses one that could add nothing', async () => {
    const contractEnd = b.clock.now() + 40 * MINUTE;
    await setContract({ ends_at: iso(contractEnd) });
    const session = await liveSession(1800);
    expect(session.info.hardExpiresAt).toBe(b.clock.now() + 30 * MINUTE);

    b.clock.advance(5 * MINUTE);
    const asked = await extend(session, 3600);
    expect(asked.state).toBe('pending');
    await approve(asked.id);
    expect((await sessionView(session.info.id)).hard_expires_at).toBe(iso(contractEnd));
    const extended = (await auditOf(`session=${session.info.id}`)).find(
      (r) => r.action === 'session.extended',
    );
    expect(extended?.details).toMatchObject({
      hard_expires_at: iso(contractEnd),
      capped_at_contract_end: true,
    });

    const more = await refusal(extend(session, 600));
    expect(more.code).toBe('duration_exceeds_max');
    expect(more.body).toMatchObject({ max_extension: 0 });
    // Refreshed tokens never pass it either (refreshed within the idle timeout on the way).
    for (const minutes of [9, 10, 13]) {
      b.clock.advance(minutes * MINUTE);
      await session.refresh();
    }
    expect(decodeJwt(session.tokens.accessToken).exp).toBe(Math.floor(contractEnd / 1000));
    expect(decodeJwt(session.tokens.accessToken).session_exp).toBe(Math.floor(contractEnd / 1000));
  });

  it('refuses requests before the contract starts and after it ends, writing nothing but the refusal', async () => {
    const start = b.clock.now() + 60 * MINUTE;
    // Shorter than the request TTL: a request made at the start is still pending at the end.
    const end = start + 30 * MINUTE;
    await setContract({ starts_at: iso(start), ends_at: iso(end) });
    const before = await rowCounts();

    const early = await refusal(ask(600));
    expect(early.status).toBe(403);
    expect(early.code).toBe('contract_not_active');
    expect(early.body.detail).toMatch(/starts at/);
    expect(await rowCounts()).toEqual(before);
    const recorded = (await auditOf(`principal=${contractor.caller.principal.id}`)).filter(
      (r) => r.action === 'request.create',
    );
    expect(recorded).toMatchObject([{ outcome: 'refused', details: { code: 'contract_not_active' } }]);

    // Inside the window it may ask, and be approved; outside it nothing is approved or activated.
    b.clock.set(start);
    const inside = await ask(600);
    const approvedInside = await ask(600);
    await approve(approvedInside.id);
    expect(await rowCounts()).toEqual({ requests: before.requests + 2, sessions: before.sessions });

    b.clock.set(end);
    const late = await refusal(ask(600));
    expect(late.code).toBe('contract_not_active');
    expect(late.body.detail).toMatch(/ended at/);
    const lateApproval = await refusal(approve(inside.id));
    expect(lateApproval.code).toBe('contract_not_active');
    expect((await requestView(inside.id)).state).toBe('pending');
    const lateActivation = await refusal(BoundSession.activate(contractor.client, approvedInside.id));
    expect(lateActivation.code).toBe('contract_not_active');
    expect(await rowCounts()).toEqual({ requests: before.requests + 2, sessions: before.sessions });
  });

  it('cancels pending requests when the contract ends, in the sweep', async () => {
    const contractEnd = b.clock.now() + 10 * MINUTE;
    await setContract({ ends_at: iso(contractEnd) });
    const pending = await ask(1800);
    const other = await s.operator.client.call<RequestView>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-15',
      justification: 'not a contractor',
      duration: 1800,
    });

    b.clock.advance(9 * MINUTE);
    await sweepOnce(b.ctx);
    expect((await requestView(pending.id)).state).toBe('pending');

    b.clock.set(contractEnd);
    await sweepOnce(b.ctx);
    expect(await requestView(pending.id)).toMatchObject({ state: 'cancelled', resolved_by: 'system' });
    expect((await requestView(other.id)).state).toBe('pending');
    const cancelled = (await auditOf(`request=${pending.id}`)).find((r) => r.action === 'request.cancelled');
    expect(cancelled).toMatchObject({ actor: 'system', details: { reason: 'contract_ended' } });
  });

  it('creates a principal with a contract, shows it, and refuses windows that cannot be', async () => {
    const end = b.clock.now() + 30 * 24 * 60 * MINUTE;
    const created = await s.admin.call<PrincipalView>('POST', '/v1/principals', {
      name: 'dana',
      kind: 'human',
      contract: { starts_at: iso(b.clock.now()), ends_at: iso(end) },
    });
    expect(created.contract).toEqual({ starts_at: iso(b.clock.now()), ends_at: iso(end) });
    expect((await s.admin.call<PrincipalView>('GET', '/v1/principals/dana')).contract).toEqual(
      created.contract,
    );
    // A principal without a window shows none.
    expect(await s.admin.call<PrincipalView>('GET', '/v1/principals/olivia')).not.toHaveProperty('contract');

    const principals = async () =>
      (await s.admin.call<{ principals: unknown[] }>('GET', '/v1/principals')).principals;
    const count = (await principals()).length;
    const past = await refusal(
      s.admin.call('POST', '/v1/principals', {
        name: 'erin',
        kind: 'human',
        contract: { ends_at: iso(b.clock.now() - MINUTE) },
      }),
    );
    expect([past.status, past.code]).toEqual([422, 'invalid_contract_window']);
    const reversed = await refusal(
      s.admin.call('POST', '/v1/principals', {
        name: 'erin',
        kind: 'human',
        contract: { starts_at: iso(end), ends_at: iso(end - MINUTE) },
      }),
    );
    expect(reversed.code).toBe('invalid_contract_window');
    const notATime = await refusal(
      s.admin.call('POST', '/v1/principals', {
        name: 'erin',
        kind: 'human',
        contract: { ends_at: 'next friday' },
      }),
    );
    expect(notATime.code).toBe('invalid_request');
    expect((await principals()).length).toBe(count);

    // A change keeps the side it does not name, and must leave a window that ends after it starts.
    const moved = await s.admin.call<PrincipalView>('PATCH', '/v1/principals/dana', {
      contract: { starts_at: iso(b.clock.now() + MINUTE) },
    });
    expect(moved.contract).toEqual({ starts_at: iso(b.clock.now() + MINUTE), ends_at: iso(end) });
    const inverted = await refusal(
      s.admin.call('PATCH', '/v1/principals/dana', { contract: { starts_at: iso(end + MINUTE) } }),
    );
    expect(inverted.code).toBe('invalid_contract_window');
    const removed = await s.admin.call<PrincipalView>('PATCH', '/v1/principals/dana', { contract: null });
    expect(removed).not.toHaveProperty('contract');
  });

  it('a contractor cannot set or lengthen its own contract', async () => {
    const contractEnd = b.clock.now() + 10 * MINUTE;
    await setContract({ ends_at: iso(contractEnd) });
    const later = iso(contractEnd + 365 * 24 * 60 * MINUTE);
    for (const contract of [{ ends_at: later }, { ends_at: null }, null]) {
      const refused = await refusal(setContract(contract, contractor.client));
      expect([refused.status, refused.code]).toEqual([403, 'forbidden']);
    }
    const made = await refusal(
      contractor.client.call('POST', '/v1/principals', {
        name: 'carla-2',
        kind: 'human',
        contract: { ends_at: later },
      }),
    );
    expect(made.code).toBe('forbidden');
    expect((await s.admin.call<PrincipalView>('GET', '/v1/principals/carla')).contract).toEqual({
      starts_at: null,
      ends_at: iso(contractEnd),
    });
  });

  it('a contract end moved into the past ends the sessions and cancels the requests at once', async () => {
    const session = await liveSession(3600);
    const pending = await ask(600);
    b.clock.advance(5 * MINUTE);

    const changed = await setContract({ ends_at: iso(b.clock.now() - MINUTE) });
    expect(changed.contract?.ends_at).toBe(iso(b.clock.now() - MINUTE));
    expect(await sessionView(session.info.id)).toMatchObject({
      state: 'ended',
      end_reason: 'contract_ended',
      ended_at: iso(b.clock.now()),
      ended_by: b.admin.principal.id,
    });
    expect(await requestView(pending.id)).toMatchObject({ state: 'cancelled' });
    expect(await mirrorCheck(session)).toEqual({ kind: 'session_ended', reason: 'contract_ended' });
    expect((await refusal(session.refresh())).code).toBe('invalid_grant');
    const updated = (await auditOf(`principal=${contractor.caller.principal.id}`)).find(
      (r) => r.action === 'principal.updated',
    );
    expect(updated?.details).toMatchObject({
      ended_sessions: [session.info.id],
      cancelled_requests: [pending.id],
    });
  });

  it('a contract end moved earlier but still ahead caps the live sessions, which end at it', async () => {
    const session = await liveSession(3600);
    const newEnd = b.clock.now() + 15 * MINUTE;
    await setContract({ ends_at: iso(newEnd) });
    expect(await sessionView(session.info.id)).toMatchObject({
      state: 'active',
      hard_expires_at: iso(newEnd),
    });
    const capped = (await auditOf(`session=${session.info.id}`)).find(
      (r) => r.action === 'session.expiry_capped',
    );
    expect(capped?.details).toMatchObject({ hard_expires_at: iso(newEnd) });
    // Lengthening it again gives nothing back.
    await setContract({ ends_at: iso(newEnd + 60 * MINUTE) });
    expect((await sessionView(session.info.id)).hard_expires_at).toBe(iso(newEnd));
    await setContract({ ends_at: iso(newEnd) });

    b.clock.advance(14 * MINUTE);
    await session.refresh();
    expect(decodeJwt(session.tokens.accessToken).exp).toBe(Math.floor(newEnd / 1000));
    b.clock.set(newEnd);
    await sweepOnce(b.ctx);
    expect(await sessionView(session.info.id)).toMatchObject({
      state: 'ended',
      end_reason: 'contract_ended',
    });
    expect((await pepRefusal(presentToGateway(session))).code).toBe('invalid_token');
  });
});
