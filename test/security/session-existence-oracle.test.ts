import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { newId } from '../../packages/broker/src/domain/ids.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { type Actor, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Issue 9 item 10: a principal probing session ids must not learn which exist. Reading
 * another principal's session (or its receipt) answers exactly what a session that does not
 * exist — or lives in another tenant — answers: same status, same code, same body but for the
 * id the prober sent.
 */
describeEachStore('reading another principal’s session is no existence oracle', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let sessionId: string;

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-7',
      justification: 'rotate rules',
      duration: 1800,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    sessionId = (await BoundSession.activate(s.operator.client, req.id)).info.id;
  });
  afterEach(() => b.close());
  afterAll(() => fixture.cleanup());

  /** The raw answer, with the probed id blanked out so that answers for different ids compare. */
  async function probe(actor: Actor, path: string, id: string) {
    const res = await b.app.inject({
      method: 'GET',
      url: path.replace(':id', id),
      headers: { authorization: `Bearer ${await actor.client.bearerToken()}` },
    });
    // `instance` names this one answer (a fresh id each time); everything else must match.
    const { instance, ...body } = JSON.parse(res.body.replaceAll(id, '<id>')) as Record<string, unknown>;
    return {
      status: res.statusCode,
      type: res.headers['content-type'],
      headers: Object.keys(res.headers).sort(),
      body,
      instance: typeof instance,
    };
  }

  it.each(['/v1/sessions/:id', '/v1/sessions/:id/receipt'])(
    'answers %s for someone else’s session exactly as for a missing one',
    async (path) => {
      // A session of another tenant, with its own principal.
      const other = await startTestBroker(b.ctx.store, { tenantName: 'globex', reuse: b });
      const foreign = await other.principal('gina');
      await other.client(other.adminIdentity).call('POST', '/v1/privileges', {
        name: 'deploy',
        actions: ['deploy:release'],
        resources: ['app/web'],
        audiences: ['https://deploy.example'],
        max_duration: 3600,
      });
      await other.client(other.adminIdentity).call('PUT', '/v1/policies', {
        policies: {
          all: 'permit(principal, action == Tether::Action::"request", resource);',
          auto: 'permit(principal, action == Tether::Action::"auto_approve", resource);',
        },
      });
      const foreignReq = await foreign.client.call<{ id: string }>('POST', '/v1/requests', {
        privilege: 'deploy',
        justification: 'release',
      });
      const foreignSession = (await BoundSession.activate(foreign.client, foreignReq.id)).info.id;

      // Non-admin probers: an outsider and an approver (who approved the very request).
      for (const prober of [s.outsider, s.approvers[0]!]) {
        const someoneElses = await probe(prober, path, sessionId);
        const missing = await probe(prober, path, newId('session'));
        const otherTenant = await probe(prober, path, foreignSession);
        expect(someoneElses.status).toBe(404);
        expect(someoneElses.body).toMatchObject({
          code: 'not_found',
          detail: 'no session "<id>" in this tenant',
        });
        expect(someoneElses).toEqual(missing);
        expect(someoneElses).toEqual(otherTenant);
      }
      // The holder and an admin do see it (the control).
      expect((await probe(s.operator, path, sessionId)).status).toBe(200);
      const admin: Actor = { caller: b.admin, identity: b.adminIdentity, client: s.admin };
      expect((await probe(admin, path, sessionId)).status).toBe(200);
    },
  );
});
