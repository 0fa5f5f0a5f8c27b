import type { JSONWebKeySet, JWTPayload } from 'jose';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { deliverDue } from '../../packages/broker/src/ssf-streams/delivery.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { SetReceiver, verifySet } from '../support/ssf-receiver.js';
import { describeEachStore } from '../support/stores.js';

const SESSION_REVOKED = 'https://schemas.openid.net/secevent/caep/event-type/session-revoked';
const TOKEN_CLAIMS_CHANGE = 'https://schemas.openid.net/secevent/caep/event-type/token-claims-change';

const FORBID_RELEASE = `forbid(principal, action == Tether::Action::"continue", resource)
  when { resource.name == "deploy" && context.entitlement_action == "deploy:release" };`;
const FORBID_DEPLOY = `forbid(principal, action == Tether::Action::"continue", resource)
  when { resource.name == "deploy" };`;

/**
 * Issue #5's acceptance, downstream side: a policy change that narrows a live session reaches
 * a registered SSF receiver as a signed token-claims-change carrying the narrower entitlement;
 * one that forbids it ends the session, and the receiver gets a signed session-revoked.
 */
describeEachStore('SSF signals from policy changes', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let receiver: Actor;
  let endpoint: SetReceiver;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), {
      // The loopback receiver is on the operator's allow-list, over http.
      config: { outboundAllowHosts: ['127.0.0.1'], outboundAllowHttp: true },
    });
    s = await setUpScenario(b);
    await s.admin.call('PATCH', '/v1/privileges/deploy', {
      actions: ['deploy:release', 'deploy:status.*'],
      resources: ['app/web', 'app/web/**'],
    });
    receiver = await b.principal('saas-receiver', 'service', ['receiver']);
    endpoint = await SetReceiver.start();
    await receiver.client.call('POST', '/v1/ssf/streams', {
      delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: endpoint.url },
    });
  });
  afterEach(async () => {
    await b.ctx.reevaluation.idle();
    await endpoint.down();
    await b.close();
  });

  async function deploySession(): Promise<string> {
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-1',
      justification: 'release',
      duration: 900,
    });
    return (await BoundSession.activate(s.pipeline.client, created.id)).info.id;
  }

  async function addPolicy(id: string, text: string): Promise<void> {
    const current = await s.admin.call<{ policies: Record<string, string> }>('GET', '/v1/policies');
    await s.admin.call('PUT', '/v1/policies', { policies: { ...current.policies, [id]: text } });
    await b.ctx.reevaluation.idle();
  }

  async function received(): Promise<JWTPayload[]> {
    const jwks = (await b.app.inject({ url: '/.well-known/jwks.json' })).json() as JSONWebKeySet;
    return Promise.all(
      endpoint.accepted.map((p) =>
        verifySet(p.jws, jwks, { issuer: PUBLIC_URL, audience: receiver.caller.principal.id }),
      ),
    );
  }
  const sessionOf = (claims: JWTPayload) => (claims.sub_id as { session: { id: string } }).session.id;

  it('a narrowing policy change sends token-claims-change with the narrower authorization_details', async () => {
    const sid = await deploySession();
    await addPolicy('freeze-releases', FORBID_RELEASE);
    expect(await deliverDue(b.ctx)).toEqual({ delivered: 1, refused: 0, failed: 0 });
    const [set] = await received();
    expect(set && sessionOf(set)).toBe(sid);
    expect(set?.events).toEqual({
      [TOKEN_CLAIMS_CHANGE]: {
        event_timestamp: Math.floor(b.clock.now() / 1000),
        claims: {
          authorization_details: [
            {
              type: 'tether_privilege',
              privilege: 'deploy',
              actions: ['deploy:status.*'],
              resources: ['app/web', 'app/web/**'],
            },
          ],
        },
      },
    });
  });

  it('a forbidding policy change ends the session and sends session-revoked', async () => {
    const sid = await deploySession();
    await addPolicy('freeze-deploy', FORBID_DEPLOY);
    const session = await s.admin.call<{ state: string; end_reason: string }>('GET', `/v1/sessions/${sid}`);
    expect(session).toMatchObject({ state: 'ended', end_reason: 'policy_changed' });
    expect(await deliverDue(b.ctx)).toEqual({ delivered: 1, refused: 0, failed: 0 });
    const [set] = await received();
    expect(set && sessionOf(set)).toBe(sid);
    expect(set?.events).toEqual({
      [SESSION_REVOKED]: {
        event_timestamp: Math.floor(b.clock.now() / 1000),
        initiating_entity: 'policy',
        reason_admin: { en: 'Tether session ended: policy_changed' },
      },
    });
  });
});
