import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../packages/broker/src/store/database.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { SCENARIO_POLICIES, type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Tether as an OpenID AuthZEN 1.0 PDP, asked by a client written here from the specification
 * alone (`AuthzenClient`: plain JSON over HTTP, none of Tether's code). Section numbers are
 * those of the Authorization API 1.0 text; request bodies follow its examples (§6.1.1, §7.1.1,
 * §7.1.2.1.1) with Tether's subjects, actions and resources.
 */

interface Answer {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: Record<string, unknown>;
}

class AuthzenClient {
  constructor(
    private readonly b: TestBroker,
    private readonly token: () => Promise<string>,
  ) {}

  async post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    const response = await this.b.app.inject({
      method: 'POST',
      url: path,
      headers: {
        authorization: `Bearer ${await this.token()}`,
        'content-type': 'application/json',
        ...headers,
      },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return {
      status: response.statusCode,
      headers: response.headers,
      body: response.json() as Record<string, unknown>,
    };
  }

  evaluation(body: unknown, headers?: Record<string, string>) {
    return this.post('/access/v1/evaluation', body, headers);
  }

  evaluations(body: unknown) {
    return this.post('/access/v1/evaluations', body);
  }
}

describeEachStore('AuthZEN 1.0 evaluation API', (fixture) => {
  let store: Store;
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  let pdp: AuthzenClient;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    store = await fixture.open();
    b = await startTestBroker(store);
    s = await setUpScenario(b);
    pep = await b.principal('edge-gateway', 'service', ['pep']);
    await s.admin.call('PUT', '/v1/peps/edge-gateway/audiences', { audiences: ['https://fw.example'] });
    pdp = new AuthzenClient(b, () => pep.client.bearerToken());
  });
  afterEach(async () => {
    await b.close();
    await store.close();
  });

  /** Olivia's live firewall-admin session (firewall:rules.write on firewall/edge-*). */
  async function liveSession(): Promise<BoundSession> {
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-7',
      justification: 'rotate rules',
      duration: 3600,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    return BoundSession.activate(s.operator.client, req.id);
  }

  const request = (
    subject: { type: string; id: string },
    action = 'firewall:rules.write',
    resource = 'firewall/edge-1',
  ) => ({
    subject,
    resource: { type: 'firewall', id: resource },
    action: { name: action, properties: { method: 'POST' } },
    context: { time: '1985-10-26T01:22-07:00' },
  });

  it('§9: publishes its metadata, identified by the URL it is fetched under', async () => {
    const response = await b.app.inject({ method: 'GET', url: '/.well-known/authzen-configuration' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const metadata = response.json() as Record<string, string>;
    // §9.2.3: the identifier is the one the well-known path was inserted into.
    expect(metadata.policy_decision_point).toBe(PUBLIC_URL);
    expect(metadata.access_evaluation_endpoint).toBe(`${PUBLIC_URL}/access/v1/evaluation`);
    expect(metadata.access_evaluations_endpoint).toBe(`${PUBLIC_URL}/access/v1/evaluations`);
  });

  it('§6: permits what a live session covers, for its session or its principal, and echoes X-Request-ID (§10.1.3)', async () => {
    const session = await liveSession();
    const bySession = await pdp.evaluation(request({ type: 'session', id: session.info.id }), {
      'x-request-id': 'req-42',
    });
    expect(bySession.status).toBe(200);
    expect(bySession.body).toMatchObject({ decision: true, context: { session: session.info.id } });
    expect(bySession.headers['x-request-id']).toBe('req-42');
    const byPrincipal = await pdp.evaluation(request({ type: 'principal', id: 'olivia' }));
    expect(byPrincipal.body.decision).toBe(true);
    // §10.1.1: unknown members are ignored.
    expect(
      (await pdp.evaluation({ ...request({ type: 'user', id: 'olivia' }), extension: { x: 1 } })).body
        .decision,
    ).toBe(true);
  });

  it('§6: denies (200, decision false, with reasons) what no live session covers, and what ended', async () => {
    const session = await liveSession();
    const subject = { type: 'session', id: session.info.id };
    for (const denied of [
      request(subject, 'firewall:rules.delete'),
      request(subject, 'firewall:rules.write', 'firewall/core-1'),
      request({ type: 'principal', id: 'oscar' }),
      request({ type: 'session', id: 'ses_00000000000000000000000000' }),
      request({ type: 'group', id: 'operators' }),
    ]) {
      const answer = await pdp.evaluation(denied);
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({
        decision: false,
        context: { reason_admin: { '403': expect.any(String) } },
      });
    }
    await session.end();
    expect((await pdp.evaluation(request(subject))).body.decision).toBe(false);
    expect((await pdp.evaluation(request({ type: 'principal', id: 'olivia' }))).body.decision).toBe(false);
  });

  it('asks Cedar now: a session policy no longer lets stand is denied before re-evaluation ends it', async () => {
    const session = await liveSession();
    const { 'operators-request': _dropped, ...rest } = SCENARIO_POLICIES;
    await s.admin.call('PUT', '/v1/policies', { policies: rest });
    expect((await pdp.evaluation(request({ type: 'session', id: session.info.id }))).body.decision).toBe(
      false,
    );
  });

  it("never decides for another tenant's session, nor at a PEP that does not honour its audience", async () => {
    const session = await liveSession();
    const rival = await startTestBroker(store, { reuse: b, tenantName: 'rival' });
    const rivalPep = await rival.principal('rival-gateway', 'service', ['pep']);
    await rival.client(rival.adminIdentity).call('PUT', '/v1/peps/rival-gateway/audiences', {
      audiences: ['https://fw.example'],
    });
    const theirs = new AuthzenClient(b, () => rivalPep.client.bearerToken());
    const answer = await theirs.evaluation(request({ type: 'session', id: session.info.id }));
    const unknown = await theirs.evaluation(
      request({ type: 'session', id: 'ses_00000000000000000000000000' }),
    );
    expect(answer.body.decision).toBe(false);
    // The same answer as for a session that does not exist: no existence oracle across tenants.
    expect(answer.body).toEqual(unknown.body);

    const otherPep = await b.principal('deploy-gateway', 'service', ['pep']);
    await s.admin.call('PUT', '/v1/peps/deploy-gateway/audiences', { audiences: ['https://deploy.example'] });
    const elsewhere = new AuthzenClient(b, () => otherPep.client.bearerToken());
    expect(
      (await elsewhere.evaluation(request({ type: 'session', id: session.info.id }))).body.decision,
    ).toBe(false);
  });

  it('§10.1.2, §11.3: 401 with a challenge unauthenticated, 403 for callers that are not PEPs, 400 for malformed requests', async () => {
    const unauthenticated = await b.app.inject({
      method: 'POST',
      url: '/access/v1/evaluation',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(request({ type: 'principal', id: 'olivia' })),
    });
    expect(unauthenticated.statusCode).toBe(401);
    expect(unauthenticated.headers['www-authenticate']).toMatch(/^Bearer /);
    const operator = new AuthzenClient(b, () => s.operator.client.bearerToken());
    expect((await operator.evaluation(request({ type: 'principal', id: 'olivia' }))).status).toBe(403);

    const valid = request({ type: 'principal', id: 'olivia' });
    const { subject: _s, ...noSubject } = valid;
    for (const malformed of [
      noSubject,
      { ...valid, subject: { type: 'principal' } },
      { ...valid, action: {} },
      { ...valid, resource: { id: 'firewall/edge-1' } },
      [valid],
      '{"subject":',
    ])
      expect((await pdp.evaluation(malformed)).status, JSON.stringify(malformed)).toBe(400);
  });

  it('§7: boxcarred evaluations take the top-level members as defaults, answer in order, and short-circuit as asked', async () => {
    await liveSession();
    // The shape of §7.1.1's example: subject, context and action as defaults, one item overriding the action.
    const boxcar = {
      subject: { type: 'principal', id: 'olivia' },
      context: { time: '2024-05-31T15:22-07:00' },
      action: { name: 'firewall:rules.write' },
      evaluations: [
        { resource: { type: 'firewall', id: 'firewall/edge-1' } },
        { resource: { type: 'firewall', id: 'firewall/core-9' } },
        { action: { name: 'firewall:rules.delete' }, resource: { type: 'firewall', id: 'firewall/edge-2' } },
        { resource: { type: 'firewall', id: 'firewall/edge-3' } },
      ],
    };
    const all = await pdp.evaluations(boxcar);
    expect(all.status).toBe(200);
    expect((all.body.evaluations as { decision: boolean }[]).map((d) => d.decision)).toEqual([
      true,
      false,
      false,
      true,
    ]);
    expect(all.body).not.toHaveProperty('decision');
    // §7.1.2.1: deny_on_first_deny stops after the first deny; permit_on_first_permit after the first permit.
    const denyFirst = await pdp.evaluations({
      ...boxcar,
      options: { evaluations_semantic: 'deny_on_first_deny' },
    });
    expect((denyFirst.body.evaluations as { decision: boolean }[]).map((d) => d.decision)).toEqual([
      true,
      false,
    ]);
    const permitFirst = await pdp.evaluations({
      ...boxcar,
      evaluations: boxcar.evaluations.slice(1),
      options: { evaluations_semantic: 'permit_on_first_permit' },
    });
    expect((permitFirst.body.evaluations as { decision: boolean }[]).map((d) => d.decision)).toEqual([
      false,
      false,
      true,
    ]);
    // §7.1: without evaluations it is the single evaluation, answered as one decision.
    const { evaluations: _e, ...single } = boxcar;
    const one = await pdp.evaluations({ ...single, resource: { type: 'firewall', id: 'firewall/edge-1' } });
    expect(one.body).toMatchObject({ decision: true });
    // An item left without an action, with no default either; an unknown semantic; too many items.
    const { action: _a, ...noAction } = boxcar;
    expect(
      (
        await pdp.evaluations({
          ...noAction,
          evaluations: [{ resource: { type: 'f', id: 'firewall/edge-1' } }],
        })
      ).status,
    ).toBe(400);
    expect(
      (await pdp.evaluations({ ...boxcar, options: { evaluations_semantic: 'first_one_wins' } })).status,
    ).toBe(400);
    expect(
      (await pdp.evaluations({ ...boxcar, evaluations: Array(65).fill(boxcar.evaluations[0]) })).status,
    ).toBe(400);
  });
});

describe('AuthZEN metadata path', () => {
  it('is the well-known string inserted between host and path (§9.2)', () => {
    expect(new URL('/.well-known/authzen-configuration', PUBLIC_URL).href).toBe(
      `${PUBLIC_URL}/.well-known/authzen-configuration`,
    );
  });
});
