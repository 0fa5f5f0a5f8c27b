import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import type { Store } from '../../packages/broker/src/store/database.js';
import { BoundSession, type BrokerClient } from '../../packages/client/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Requestable denials, after the OpenID AuthZEN Access Request and Approval Profile (Draft 1):
 * the denial's `context.access_request` (§7), the submission and its task handle (§10), the task
 * status (§11), re-evaluation after approval (§12), idempotency (§10.1) and the profile's errors
 * (§14), spoken by a client written here from the text. The approval itself is Tether's: the
 * same request, rules and approvers as any other.
 */

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  // biome-ignore lint/suspicious/noExplicitAny: the test reads the profile's JSON answers freely
  body: Record<string, any>;
}

async function post(
  b: TestBroker,
  client: BrokerClient,
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const response = await b.app.inject({
    method: 'POST',
    url,
    headers: {
      authorization: `Bearer ${await client.bearerToken()}`,
      'content-type': 'application/json',
      ...headers,
    },
    payload: JSON.stringify(body),
  });
  return { status: response.statusCode, headers: response.headers, body: response.json() };
}

async function get(b: TestBroker, client: BrokerClient, url: string): Promise<Answer> {
  const response = await b.app.inject({
    method: 'GET',
    url,
    headers: { authorization: `Bearer ${await client.bearerToken()}` },
  });
  return { status: response.statusCode, headers: response.headers, body: response.json() };
}

const path = (absolute: string) => new URL(absolute).pathname;
const PROFILE_ERROR = 'urn:openid:authzen:access-request:error:';

describeEachStore('AuthZEN access requests (requestable denials)', (fixture) => {
  let store: Store;
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    store = await fixture.open();
    b = await startTestBroker(store);
    s = await setUpScenario(b);
    pep = await b.principal('edge-gateway', 'service', ['pep']);
    await s.admin.call('PUT', '/v1/peps/edge-gateway/audiences', { audiences: ['https://fw.example'] });
  });
  afterEach(async () => {
    await b.close();
    await store.close();
  });

  const question = {
    subject: { type: 'principal', id: 'olivia' },
    resource: { type: 'firewall', id: 'firewall/edge-1' },
    action: { name: 'firewall:rules.write' },
  };
  const evaluate = (context: Record<string, unknown> = {}) =>
    post(b, pep.client, '/access/v1/evaluation', { ...question, context });

  /** A requestable denial and the submission for it, as a PEP would relay it to the agent. */
  async function deniedAndSubmission(ticket = 'NET-9') {
    const denied = await evaluate();
    const { access_request: ar, evaluation_id } = denied.body.context;
    return {
      denied,
      submission: {
        ...question,
        context: { ticket, business_justification: 'the agent must open port 443 for the release' },
        denial: {
          binding_token: ar.binding_token,
          evaluation_id,
          expires_at: ar.expires_at,
          template: ar.template,
        },
      },
    };
  }

  it('§7: a denial the subject could resolve carries access_request; one nothing would resolve does not', async () => {
    const denied = await evaluate();
    expect(denied.status).toBe(200);
    expect(denied.body.decision).toBe(false);
    const context = denied.body.context;
    expect(context).toMatchObject({
      reason: 'approval_required',
      evaluation_id: expect.stringMatching(/^evl_/),
    });
    expect(context.access_request).toMatchObject({
      endpoint: `${PUBLIC_URL}/access/v1/requests`,
      template: 'firewall-admin',
      binding_token: expect.any(String),
      request_schema_url: `${PUBLIC_URL}/access/v1/requests/schema/firewall-admin`,
    });
    expect(Date.parse(context.access_request.expires_at)).toBe(
      b.clock.now() - (b.clock.now() % 1000) + 600_000,
    );
    // The schema says what the request needs: a ticket of the privilege's shape, a justification.
    const schema = await get(b, s.operator.client, path(context.access_request.request_schema_url));
    expect(schema.body.properties.context.required).toEqual(['ticket', 'business_justification']);
    expect(schema.body.properties.context.properties.ticket.pattern).toBe('^(?:(NET|CHG)-[0-9]+)$');
    // Nothing grants deleting rules: a plain denial.
    const plain = await post(b, pep.client, '/access/v1/evaluation', {
      ...question,
      action: { name: 'firewall:rules.delete' },
    });
    expect(plain.body.decision).toBe(false);
    expect(plain.body.context.access_request).toBeUndefined();
    // The metadata names the endpoint and the key set the binding tokens verify with (§6).
    const metadata = (
      await b.app.inject({ method: 'GET', url: '/.well-known/authzen-configuration' })
    ).json();
    expect(metadata).toMatchObject({
      access_request_endpoint: `${PUBLIC_URL}/access/v1/requests`,
      jwks_uri: `${PUBLIC_URL}/.well-known/jwks.json`,
      capabilities: ['urn:openid:authzen:capability:access-request'],
    });
  });

  it('§10-§12: submitted with a ticket, approved by a human, re-evaluated: allowed once the session is live, denied after it ends', async () => {
    const { submission } = await deniedAndSubmission();
    const submitted = await post(b, s.operator.client, '/access/v1/requests', submission, {
      'idempotency-key': 'k-1',
    });
    expect(submitted.status).toBe(202);
    const task = submitted.body.task;
    expect(task).toMatchObject({ status: 'pending', id: expect.stringMatching(/^req_/) });
    expect(submitted.headers.location).toBe(task.status_endpoint);
    expect((await get(b, s.operator.client, path(task.status_endpoint))).body.task.status).toBe('pending');

    // The same submission again (its answer lost): the same task, nothing new.
    const again = await post(b, s.operator.client, '/access/v1/requests', submission, {
      'idempotency-key': 'k-1',
    });
    expect(again.status).toBe(200);
    expect(again.body.task.id).toBe(task.id);

    // A human approves it, through Tether's own review: the same rules as any request.
    await s.approvers[0]!.client.call('POST', `/v1/requests/${task.id}/approve`);
    const approved = await get(b, s.operator.client, path(task.status_endpoint));
    expect(approved.body.task.status).toBe('approved');
    expect(approved.body.result).toMatchObject({ mode: 'reevaluate', approval: { id: task.id } });

    // Approved is not yet a session: retry once it is (§12 grant_pending).
    const pending = await evaluate({ approval: approved.body.result.approval });
    expect(pending.body).toMatchObject({
      decision: false,
      context: { reason: 'grant_pending', next_action: 'retry' },
    });
    const session = await BoundSession.activate(s.operator.client, task.id);
    expect((await evaluate({ approval: approved.body.result.approval })).body.decision).toBe(true);
    await session.end();
    expect((await evaluate()).body.decision).toBe(false);
  });

  it('§14: refuses an expired denial, a tampered binding, a replay, and a submission for another subject', async () => {
    const { submission } = await deniedAndSubmission();
    const refusedAs = async (answer: Promise<Answer>, status: number, code: string) => {
      const got = await answer;
      expect(got.status, JSON.stringify(got.body)).toBe(status);
      expect(got.body.type).toBe(code.includes(':') ? code : `${PROFILE_ERROR}${code}`);
      expect(got.headers['content-type']).toMatch(/^application\/problem\+json/);
    };
    const submit = (body: unknown, who = s.operator.client, headers: Record<string, string> = {}) =>
      post(b, who, '/access/v1/requests', body, headers);
    const countRequests = async () =>
      (await store.db.selectFrom('access_requests').select('id').execute()).length;
    const before = await countRequests();

    // The question changed after the denial: another resource, another action.
    await refusedAs(
      submit({ ...submission, resource: { type: 'firewall', id: 'firewall/edge-2' } }),
      400,
      'invalid_denial_binding',
    );
    await refusedAs(
      submit({ ...submission, action: { name: 'firewall:rules.read' } }),
      400,
      'invalid_denial_binding',
    );
    // The token itself altered (one character of its signature), or its expiry restated.
    const token = submission.denial.binding_token;
    const flipped = `${token.slice(0, -3)}${token.at(-3) === 'A' ? 'B' : 'A'}${token.slice(-2)}`;
    await refusedAs(
      submit({ ...submission, denial: { ...submission.denial, binding_token: flipped } }),
      400,
      'invalid_denial_binding',
    );
    await refusedAs(
      submit({
        ...submission,
        denial: { ...submission.denial, expires_at: new Date(b.clock.now() + 3_600_000).toISOString() },
      }),
      400,
      'invalid_denial_binding',
    );
    // Someone else submits Olivia's denial, or rewrites its subject to himself.
    await refusedAs(submit(submission, s.outsider.client), 403, 'https://tether.dev/errors#forbidden');
    await refusedAs(
      submit({ ...submission, subject: { type: 'principal', id: 'oscar' } }, s.outsider.client),
      400,
      'invalid_denial_binding',
    );
    // Another tenant's PEP denial carried here.
    const rival = await startTestBroker(store, { reuse: b, tenantName: 'rival' });
    const rivalScenario = await setUpScenario(rival);
    const rivalPep = await rival.principal('rival-gateway', 'service', ['pep']);
    await rivalScenario.admin.call('PUT', '/v1/peps/rival-gateway/audiences', {
      audiences: ['https://fw.example'],
    });
    const theirs = await post(rival, rivalPep.client, '/access/v1/evaluation', { ...question, context: {} });
    await refusedAs(
      submit({
        ...submission,
        denial: { ...submission.denial, binding_token: theirs.body.context.access_request.binding_token },
      }),
      400,
      'invalid_denial_binding',
    );
    expect(await countRequests()).toBe(before);

    // Submitted once; the same denial again without the same idempotency key is a replay.
    expect((await submit(submission)).status).toBe(202);
    await refusedAs(submit(submission), 409, 'duplicate_request');
    await refusedAs(
      submit(submission, s.operator.client, { 'idempotency-key': 'other' }),
      409,
      'duplicate_request',
    );
    expect(await countRequests()).toBe(before + 1);

    // A denial left for longer than it lasts.
    const late = await deniedAndSubmission();
    b.clock.advance(11 * 60_000);
    await refusedAs(submit(late.submission), 410, 'expired_denial');
    // A task nobody submitted, or someone else's.
    await refusedAs(
      get(b, s.operator.client, '/access/v1/requests/req_00000000000000000000000000'),
      404,
      'unknown_task',
    );
  });

  it('answers grant_pending only for an approval that covers this call, in its window, not yet activated', async () => {
    const { submission } = await deniedAndSubmission();
    const { task } = (
      await post(b, s.operator.client, '/access/v1/requests', submission, { 'idempotency-key': 'k-9' })
    ).body;
    await s.approvers[0]!.client.call('POST', `/v1/requests/${task.id}/approve`);
    const approval = { id: task.id };
    expect((await evaluate({ approval })).body.context.reason).toBe('grant_pending');
    // Cited for what the privilege does not grant: no pending grant, a plain denial.
    const elsewhere = await post(b, pep.client, '/access/v1/evaluation', {
      ...question,
      action: { name: 'firewall:rules.delete' },
      context: { approval },
    });
    expect(elsewhere.body.context.reason).toBeUndefined();
    // Someone else citing Olivia's approval for himself.
    const oscar = await post(b, pep.client, '/access/v1/evaluation', {
      ...question,
      subject: { type: 'principal', id: 'oscar' },
      context: { approval },
    });
    expect(oscar.body.context.reason).not.toBe('grant_pending');
    // Past its activation window: expired, and the denial is requestable again.
    b.clock.advance(2 * 3_600_000);
    const lapsed = await evaluate({ approval });
    expect(lapsed.body.context.reason).toBe('approval_required');
    expect((await get(b, s.operator.client, path(task.status_endpoint))).body.task.status).toBe('expired');
    // The idempotent retry still answers the task, though its denial has long expired.
    const retried = await post(b, s.operator.client, '/access/v1/requests', submission, {
      'idempotency-key': 'k-9',
    });
    expect(retried.status).toBe(200);
    expect(retried.body.task.id).toBe(task.id);
  });

  it('offers no requestable denial to a subject Cedar would not let ask, and bounds what a caller may send', async () => {
    // Oscar is no operator: the policy would refuse his request, so none is offered.
    const oscar = await post(b, pep.client, '/access/v1/evaluation', {
      ...question,
      subject: { type: 'principal', id: 'oscar' },
    });
    expect(oscar.body.decision).toBe(false);
    expect(oscar.body.context.access_request).toBeUndefined();
    // A body nested past 16 levels is refused, not walked (nor signed).
    const depth = 20_000;
    const deep = `${'{"d":'.repeat(depth)}{}${'}'.repeat(depth)}`;
    const nested = await b.app.inject({
      method: 'POST',
      url: '/access/v1/evaluation',
      headers: {
        authorization: `Bearer ${await pep.client.bearerToken()}`,
        'content-type': 'application/json',
      },
      payload: `{"subject":{"type":"principal","id":"olivia","properties":${deep}},"resource":{"type":"f","id":"firewall/edge-1"},"action":{"name":"firewall:rules.write"}}`,
    });
    expect(nested.statusCode).toBe(400);
    // The actor in the subject's properties does not bind: a PEP may move it elsewhere.
    const withActor = await post(b, pep.client, '/access/v1/evaluation', {
      ...question,
      subject: { ...question.subject, properties: { act: { sub: 'agent-7' } } },
    });
    const ar = withActor.body.context.access_request;
    const submitted = await post(b, s.operator.client, '/access/v1/requests', {
      ...question,
      context: { ticket: 'NET-3', business_justification: 'moved actor' },
      denial: { binding_token: ar.binding_token, expires_at: ar.expires_at },
    });
    expect(submitted.status).toBe(202);
    // A session wanted until a time already past.
    const { submission } = await deniedAndSubmission();
    const past = await post(b, s.operator.client, '/access/v1/requests', {
      ...submission,
      requested_access: { requested_until: new Date(b.clock.now() - 1000).toISOString() },
    });
    expect(past.status).toBe(400);
  });
});
