import type { StreamView } from '@tether-broker/protocol/api';
import type { JSONWebKeySet } from 'jose';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { deliverDue } from '../../packages/broker/src/ssf-streams/delivery.js';
import type { Actor } from '../support/broker.js';
import { PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { SetReceiver, verifySet } from '../support/ssf-receiver.js';
import { describeEachStore } from '../support/stores.js';

const SESSION_REVOKED = 'https://schemas.openid.net/secevent/caep/event-type/session-revoked';
const TOKEN_CLAIMS_CHANGE = 'https://schemas.openid.net/secevent/caep/event-type/token-claims-change';
const VERIFICATION = 'https://schemas.openid.net/secevent/ssf/event-type/verification';
const PUSH = 'urn:ietf:rfc:8935';
const POLL = 'urn:ietf:rfc:8936';
/** A secret the receiver's endpoint wants: it must never come back out of the broker. */
const HEADER_SECRET = 'Bearer receiver-secret-7f3a91c2';

describeEachStore('SSF stream management', (fixture) => {
  let b: TestBroker;
  let receiver: Actor;
  let endpoint: SetReceiver;
  afterAll(() => fixture.cleanup());
  afterEach(async () => {
    await endpoint.down();
    await b.close();
  });

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), {
      // The loopback receiver is on the operator's allow-list, over http.
      config: { outboundAllowHosts: ['127.0.0.1'], outboundAllowHttp: true },
    });
    receiver = await b.principal('saas-receiver', 'service', ['receiver']);
    endpoint = await SetReceiver.start();
  });

  const createPush = (actor: Actor = receiver, extra: Record<string, unknown> = {}) =>
    actor.client.call<StreamView>('POST', '/v1/ssf/streams', {
      delivery: { method: PUSH, endpoint_url: endpoint.url, authorization_header: HEADER_SECRET },
      description: 'downstream SaaS',
      ...extra,
    });

  it('publishes the transmitter configuration metadata', async () => {
    const res = await b.app.inject({ url: '/.well-known/ssf-configuration' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({
      spec_version: '1_0',
      issuer: PUBLIC_URL,
      jwks_uri: `${PUBLIC_URL}/.well-known/jwks.json`,
      delivery_methods_supported: [PUSH, POLL],
      configuration_endpoint: `${PUBLIC_URL}/v1/ssf/streams`,
      status_endpoint: `${PUBLIC_URL}/v1/ssf/status`,
      verification_endpoint: `${PUBLIC_URL}/v1/ssf/verify`,
      authorization_schemes: [{ spec_urn: 'urn:ietf:rfc:6749' }, { spec_urn: 'urn:ietf:rfc:9449' }],
      default_subjects: 'ALL',
    });
  });

  it('creates, reads, updates, replaces and deletes a stream, never showing its Authorization header', async () => {
    const created = await createPush();
    expect(created).toEqual({
      stream_id: expect.stringMatching(/^stm_[0-9a-z]{26}$/),
      iss: PUBLIC_URL,
      aud: receiver.caller.principal.id,
      events_supported: [SESSION_REVOKED, TOKEN_CLAIMS_CHANGE],
      events_requested: [SESSION_REVOKED, TOKEN_CLAIMS_CHANGE],
      events_delivered: [SESSION_REVOKED, TOKEN_CLAIMS_CHANGE],
      delivery: { method: PUSH, endpoint_url: endpoint.url },
      description: 'downstream SaaS',
    });
    const id = created.stream_id;
    expect(await receiver.client.call('GET', `/v1/ssf/streams?stream_id=${id}`)).toEqual(created);
    expect(await receiver.client.call('GET', '/v1/ssf/streams')).toEqual([created]);

    // PATCH: members present change; an unknown event type is ignored, not delivered.
    const patched = await receiver.client.call<StreamView>('PATCH', '/v1/ssf/streams', {
      stream_id: id,
      iss: PUBLIC_URL,
      events_requested: [SESSION_REVOKED, 'urn:example:unknown'],
    });
    expect(patched.events_requested).toEqual([SESSION_REVOKED, 'urn:example:unknown']);
    expect(patched.events_delivered).toEqual([SESSION_REVOKED]);
    expect(patched.delivery).toEqual(created.delivery);
    expect(patched.description).toBe('downstream SaaS');

    // PUT: what a creation with this body would give; without `delivery`, a poll stream.
    const replaced = await receiver.client.call<StreamView>('PUT', '/v1/ssf/streams', {
      stream_id: id,
      events_requested: [TOKEN_CLAIMS_CHANGE],
    });
    expect(replaced).toEqual({
      ...created,
      events_requested: [TOKEN_CLAIMS_CHANGE],
      events_delivered: [TOKEN_CLAIMS_CHANGE],
      delivery: { method: POLL, endpoint_url: `${PUBLIC_URL}/v1/ssf/poll/${id}` },
      description: undefined,
    });
    // Read-modify-write: a receiver may send the whole object back, transmitter members included.
    const { description: _none, ...roundTrip } = replaced;
    expect(await receiver.client.call('PUT', '/v1/ssf/streams', roundTrip)).toEqual(roundTrip);

    const del = await b.app.inject({
      method: 'DELETE',
      url: `/v1/ssf/streams?stream_id=${id}`,
      headers: { authorization: `Bearer ${await receiver.client.bearerToken()}` },
    });
    expect(del.statusCode).toBe(204);
    expect(del.body).toBe('');
    expect((await refusal(receiver.client.call('GET', `/v1/ssf/streams?stream_id=${id}`))).code).toBe(
      'not_found',
    );
    expect(await receiver.client.call('GET', '/v1/ssf/streams')).toEqual([]);

    // The audit trail has every change, and not the secret.
    const audit = await b
      .client(b.adminIdentity)
      .call<{ records: { action: string; details: unknown }[] }>('GET', '/v1/audit');
    const actions = audit.records.map((r) => r.action).filter((a) => a.startsWith('ssf.'));
    expect(actions).toEqual(
      expect.arrayContaining(['ssf.stream.created', 'ssf.stream.updated', 'ssf.stream.deleted']),
    );
    expect(JSON.stringify(audit)).not.toContain('receiver-secret');
    expect(b.logs.join('\n')).not.toContain('receiver-secret');
  });

  it('reads and sets the status; a disabled stream takes no verification request', async () => {
    const { stream_id } = await createPush();
    expect(await receiver.client.call('GET', `/v1/ssf/status?stream_id=${stream_id}`)).toEqual({
      stream_id,
      status: 'enabled',
    });
    const paused = await receiver.client.call('POST', '/v1/ssf/status', {
      stream_id,
      status: 'paused',
      reason: 'maintenance',
    });
    expect(paused).toEqual({ stream_id, status: 'paused', reason: 'maintenance' });
    expect(await receiver.client.call('GET', `/v1/ssf/status?stream_id=${stream_id}`)).toEqual(paused);
    await receiver.client.call('POST', '/v1/ssf/status', { stream_id, status: 'disabled' });
    const refused = await refusal(receiver.client.call('POST', '/v1/ssf/verify', { stream_id, state: 's' }));
    expect(refused.code).toBe('stream_disabled');
    expect(refused.status).toBe(409);
  });

  it('delivers a verification event, signed by the broker, with the state and the Authorization header', async () => {
    const { stream_id } = await createPush();
    const res = await b.app.inject({
      method: 'POST',
      url: '/v1/ssf/verify',
      headers: {
        authorization: `Bearer ${await receiver.client.bearerToken()}`,
        'content-type': 'application/json',
      },
      payload: JSON.stringify({ stream_id, state: 'c3RhdGUtMQ' }),
    });
    expect(res.statusCode).toBe(204);
    expect(endpoint.pushes).toEqual([]);

    expect(await deliverDue(b.ctx)).toEqual({ delivered: 1, refused: 0, failed: 0 });
    const [push] = endpoint.pushes;
    expect(push?.contentType).toBe('application/secevent+jwt');
    expect(push?.authorization).toBe(HEADER_SECRET);
    const jwks = (await b.app.inject({ url: '/.well-known/jwks.json' })).json() as JSONWebKeySet;
    const claims = await verifySet(push?.jws ?? '', jwks, {
      issuer: PUBLIC_URL,
      audience: receiver.caller.principal.id,
    });
    expect(claims).toEqual({
      iss: PUBLIC_URL,
      aud: receiver.caller.principal.id,
      jti: expect.any(String),
      iat: Math.floor(b.clock.now() / 1000),
      sub_id: { format: 'opaque', id: stream_id },
      events: { [VERIFICATION]: { state: 'c3RhdGUtMQ' } },
    });
    // Delivered once: nothing is left to send.
    expect(await deliverDue(b.ctx)).toEqual({ delivered: 0, refused: 0, failed: 0 });
  });

  it('lets only admins and receivers manage streams, each receiver its own, each tenant its own', async () => {
    const plain = await b.principal('olivia');
    expect((await refusal(createPush(plain))).code).toBe('forbidden');
    expect((await refusal(plain.client.call('GET', '/v1/ssf/streams'))).code).toBe('forbidden');

    const mine = await createPush();
    const other = await b.principal('other-receiver', 'service', ['receiver']);
    const id = mine.stream_id;
    expect(await other.client.call('GET', '/v1/ssf/streams')).toEqual([]);
    for (const attempt of [
      () => other.client.call('GET', `/v1/ssf/streams?stream_id=${id}`),
      () => other.client.call('PATCH', '/v1/ssf/streams', { stream_id: id, description: 'mine now' }),
      () => other.client.call('DELETE', `/v1/ssf/streams?stream_id=${id}`),
      () => other.client.call('GET', `/v1/ssf/status?stream_id=${id}`),
      () => other.client.call('POST', '/v1/ssf/status', { stream_id: id, status: 'disabled' }),
      () => other.client.call('POST', '/v1/ssf/verify', { stream_id: id }),
      () => other.client.call('POST', `/v1/ssf/poll/${id}`, { returnImmediately: true }),
    ])
      expect((await refusal(attempt())).code).toBe('not_found');

    // The tenant's admin sees and manages every stream of the tenant.
    const admin = b.client(b.adminIdentity);
    expect(await admin.call('GET', '/v1/ssf/streams')).toEqual([mine]);
    const adminStream = await admin.call<StreamView>('POST', '/v1/ssf/streams', {
      aud: ['https://saas.example/web', 'https://saas.example/mobile'],
    });
    expect(adminStream.aud).toEqual(['https://saas.example/web', 'https://saas.example/mobile']);
    expect(adminStream.delivery.method).toBe(POLL);
    // A receiver cannot choose its audience, nor change it later; nobody can.
    expect((await refusal(createPush(receiver, { aud: 'https://victim.example' }))).code).toBe(
      'invalid_request',
    );
    const audChange = await refusal(admin.call('PATCH', '/v1/ssf/streams', { stream_id: id, aud: 'x' }));
    expect(audChange.code).toBe('invalid_request');

    // Another tenant's admin: the stream does not exist for it.
    const globex = await startTestBroker(b.ctx.store, { tenantName: 'globex', reuse: b });
    const foreign = globex.client(globex.adminIdentity);
    expect(await foreign.call('GET', '/v1/ssf/streams')).toEqual([]);
    expect((await refusal(foreign.call('GET', `/v1/ssf/streams?stream_id=${id}`))).code).toBe('not_found');
    expect((await refusal(foreign.call('DELETE', `/v1/ssf/streams?stream_id=${id}`))).code).toBe('not_found');

    const anonymous = await b.app.inject({ url: '/v1/ssf/streams' });
    expect(anonymous.statusCode).toBe(401);
    expect(await receiver.client.call('GET', `/v1/ssf/streams?stream_id=${id}`)).toEqual(mine);
  });

  it('refuses bad configurations with invalid_request and stores nothing', async () => {
    const bad: Record<string, unknown>[] = [
      { delivery: { method: PUSH, endpoint_url: 'https://user:pw@saas.example/events' } },
      { delivery: { method: PUSH, endpoint_url: 'not a url' } },
      { delivery: { method: PUSH } },
      { delivery: { method: POLL, endpoint_url: 'https://saas.example/poll' } },
      { delivery: { method: POLL, authorization_header: 'Bearer x' } },
      {
        delivery: { method: PUSH, endpoint_url: endpoint.url, authorization_header: 'Bearer x\r\nX-Evil: 1' },
      },
      { delivery: { method: 'urn:example:carrier-pigeon', endpoint_url: endpoint.url } },
      { delivery: { method: PUSH, endpoint_url: endpoint.url }, min_verification_interval: 5 },
      { description: 'x'.repeat(257) },
      { events_requested: [{ uri: SESSION_REVOKED }] },
    ];
    for (const body of bad) {
      const refused = await refusal(receiver.client.call('POST', '/v1/ssf/streams', body));
      expect(refused.code, JSON.stringify(body)).toBe('invalid_request');
      expect(refused.status).toBe(400);
    }
    // Plain http to a host the operator did not allow it for: refused before anything is stored.
    const clear = await refusal(
      receiver.client.call('POST', '/v1/ssf/streams', {
        delivery: { method: PUSH, endpoint_url: 'http://saas.example/events' },
      }),
    );
    expect(clear).toMatchObject({ status: 400, code: 'destination_refused' });
    const { stream_id } = await createPush();
    for (const body of [
      { stream_id, iss: 'https://evil.example' },
      { stream_id, events_supported: [SESSION_REVOKED] },
      { stream_id, events_delivered: [VERIFICATION] },
      { stream_id: 'stm_nope' },
      { stream_id, status: 'enabled' },
    ]) {
      const refused = await refusal(receiver.client.call('PATCH', '/v1/ssf/streams', body));
      expect(refused.code, JSON.stringify(body)).toBe('invalid_request');
    }
    const unknownStatus = await refusal(
      receiver.client.call('POST', '/v1/ssf/status', { stream_id, status: 'deleted' }),
    );
    expect(unknownStatus.code).toBe('invalid_request');
    expect((await refusal(receiver.client.call('GET', '/v1/ssf/status'))).code).toBe('invalid_request');
    expect((await refusal(receiver.client.call('GET', '/v1/ssf/streams?stream_id=1'))).code).toBe(
      'invalid_request',
    );
    expect(await receiver.client.call('GET', '/v1/ssf/streams')).toHaveLength(1);
  });
});
