import type {
  AuditRecordList,
  AuditVerificationView,
  CustomerView,
  EligibleCustomerList,
  RelationshipOutcome,
  RelationshipView,
  RequestView,
  SeatView,
  SessionView,
} from '@tether-broker/protocol/api';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sweepOnce } from '../../packages/broker/src/operations/sweeper.js';
import { BoundSession, type BrokerClient, type IdentityFile } from '../../packages/client/src/index.js';
import { createEnforcer, type Enforcer } from '../../packages/pep/src/index.js';
import { type Actor, newKeyPair, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { refusal } from '../support/refusal.js';
import { describeEachStore } from '../support/stores.js';

const AUDIENCE = 'https://fw.example';
const DAY = 24 * 3600_000;
const iso = (ms: number) => new Date(ms).toISOString();

/** One tenant's people and enforcement point, as the test drives them. */
interface Side {
  name: string;
  tenantId: string;
  admin: BrokerClient;
  approver?: BrokerClient;
  enforcer: Enforcer;
  /** The base URL its PEP answers at (the DPoP proofs' `htu`). */
  base: string;
}

/**
 * The MSP operating model end to end (issue 14 acceptance): one provider, two customers, each a
 * tenant of its own onboarded over the API. An operator of the provider, with their one identity,
 * asks in customer A under a relationship A accepted; A's approver approves; the session reaches
 * A's PEP and is refused at B's and at the provider's, all three enforcing the same audience.
 * When A ends the relationship the session ends at A's PEP within the revocation bound, with a
 * receipt. Refusals from the attacker's side: nothing before acceptance, nothing the relationship
 * does not name, no reach across tenants by either side, a tampered relationship row grants nothing.
 */
describeEachStore('the MSP model: provider, customers, relationships', (fixture) => {
  let b: TestBroker;
  let address: string;
  let provider: Side;
  let acme: Side;
  let globex: Side;
  let operator: Actor;
  let outsider: Actor;
  let relationshipId: string;
  let seat: BrokerClient;
  let session: BoundSession;
  const enforcers: Enforcer[] = [];

  afterAll(async () => {
    for (const e of enforcers) await e.close();
    await b?.app.close();
    await fixture.cleanup();
  });

  /** A client acting as `principal` of `tenant` with `key` (an identity file's contents). */
  const clientOf = (tenant: string, principal: string, key: unknown): BrokerClient =>
    b.client({ broker: PUBLIC_URL, tenant, principal, key } as IdentityFile);

  /** A PEP of `tenantId` following the broker's log for AUDIENCE, answering at `base`. */
  async function pepOf(admin: BrokerClient, tenantId: string, base: string): Promise<Enforcer> {
    const { privateJwk, publicJwk } = await newKeyPair();
    const pep = await admin.call<{ id: string }>('POST', '/v1/principals', {
      name: 'edge-pep',
      kind: 'service',
      roles: ['pep'],
      keys: [publicJwk],
    });
    await admin.call('PUT', `/v1/peps/${pep.id}/audiences`, { audiences: [AUDIENCE] });
    const enforcer = createEnforcer({
      broker: address,
      issuer: PUBLIC_URL,
      audience: AUDIENCE,
      tenant: tenantId,
      publicBaseUrl: base,
      identity: { principal: pep.id, key: privateJwk as Record<string, unknown> },
      now: () => b.clock.now(),
      stalenessBudgetMs: 60_000,
      reconnect: { minDelayMs: 20, maxDelayMs: 200 },
      decisions: false,
    });
    enforcers.push(enforcer);
    enforcer.start();
    return enforcer;
  }

  /** The tenant's firewall privilege, approvers and policies, made by its own admin. */
  async function furnish(admin: BrokerClient, tenantId: string): Promise<BrokerClient> {
    const { privateJwk, publicJwk } = await newKeyPair();
    const approver = await admin.call<{ id: string }>('POST', '/v1/principals', {
      name: 'anna',
      kind: 'human',
      keys: [publicJwk],
    });
    await admin.call('POST', '/v1/groups', { name: 'approvers' });
    await admin.call('PUT', '/v1/groups/approvers/members/anna');
    await admin.call('POST', '/v1/privileges', {
      name: 'firewall-admin',
      actions: ['firewall:rules.write'],
      resources: ['firewall/edge-*'],
      audiences: [AUDIENCE],
      max_duration: 4 * 3600,
      approval: { approvals: 1, approvers: { groups: ['approvers'] } },
      ticket: { required: false },
    });
    await admin.call('POST', '/v1/privileges', {
      name: 'db-admin',
      actions: ['db:*'],
      resources: ['db/*'],
      audiences: [AUDIENCE],
      max_duration: 3600,
      approval: { approvals: 1, approvers: { groups: ['approvers'] } },
      ticket: { required: false },
    });
    await admin.call('PUT', '/v1/policies', {
      policies: {
        'approvers-approve': `permit(principal in Tether::Group::"approvers", action == Tether::Action::"approve", resource) when { principal != context.requester };`,
      },
    });
    return clientOf(tenantId, approver.id, privateJwk);
  }

  async function onboard(name: string): Promise<Side> {
    const { privateJwk, publicJwk } = await newKeyPair();
    const made = await provider.admin.call<CustomerView>('POST', '/v1/customers', {
      name,
      admin: { name: 'cathy', key: publicJwk },
    });
    expect(made.tenant).toMatchObject({ name, kind: 'customer' });
    const admin = clientOf(made.tenant.id, made.admin.id, privateJwk);
    const approver = await furnish(admin, made.tenant.id);
    const base = `https://fw.${name}.example`;
    return {
      name,
      tenantId: made.tenant.id,
      admin,
      approver,
      base,
      enforcer: await pepOf(admin, made.tenant.id, base),
    };
  }

  beforeAll(async () => {
    b = await startTestBroker(await fixture.open(), {
      tenantName: 'msp',
      tenantKind: 'provider',
      config: { heartbeatIntervalMs: 50 },
    });
    address = await b.app.listen({ port: 0, host: '127.0.0.1' });
    const admin = b.client(b.adminIdentity);
    provider = {
      name: 'msp',
      tenantId: b.tenant.id,
      admin,
      base: 'https://fw.msp.example',
      enforcer: undefined as never,
    };
    provider.approver = await furnish(admin, b.tenant.id);
    provider.enforcer = await pepOf(admin, b.tenant.id, provider.base);
    operator = await b.principal('pat');
    outsider = await b.principal('eve');
    await admin.call('POST', '/v1/groups', { name: 'operators' });
    await admin.call('PUT', '/v1/groups/operators/members/pat');
    acme = await onboard('acme-corp');
    globex = await onboard('globex');
    await eventually(() => enforcers.every((e) => e.state().fresh), 10_000, 'every PEP fresh');
  }, 60_000);

  /** Routes a session's resource calls to the PEP whose base URL they name. */
  const resourceFetch: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    const side = [provider, acme, globex].find((s) => s.base === url.origin);
    if (!side) throw new Error(`no PEP at ${url.origin}`);
    const decision = await side.enforcer.authorize({
      method: init?.method ?? 'GET',
      url: url.pathname,
      headers: Object.fromEntries(new Headers(init?.headers).entries()),
      action: 'firewall:rules.write',
      resource: 'firewall/edge-1',
    });
    return new Response(JSON.stringify({ code: decision.code ?? null }), {
      status: decision.allow ? 200 : decision.status,
    });
  };
  const callAt = (s: BoundSession, side: Side) => s.fetch(`${side.base}/rules/edge-1`, { method: 'POST' });

  const count = async (
    table: 'principals' | 'access_requests' | 'sessions' | 'relationships',
    tenant?: string,
  ) => {
    let q = b.ctx.store.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n'));
    if (tenant && table !== 'relationships') q = q.where('tenant_id', '=', tenant);
    return Number((await q.executeTakeFirstOrThrow()).n);
  };

  it('onboards customers over the API; neither side reaches into the other', async () => {
    const customers = await provider.admin.call<{ customers: { name: string }[] }>('GET', '/v1/customers');
    expect(customers.customers.map((c) => c.name)).toEqual(['acme-corp', 'globex']);
    // The provider's admin sees its own tenant only: no customer principal, privilege or policy.
    const principals = await provider.admin.call<{ principals: { name: string }[] }>('GET', '/v1/principals');
    expect(principals.principals.map((p) => p.name)).not.toContain('cathy');
    // A customer's admin cannot onboard customers, propose relationships or read the provider's.
    expect(
      (await refusal(acme.admin.call('POST', '/v1/customers', { name: 'x', admin: { name: 'y', key: {} } })))
        .code,
    ).toBe('not_a_provider');
    const before = await count('relationships');
    const proposal = {
      customer: 'globex',
      name: 'sneaky',
      groups: ['approvers'],
      privileges: ['firewall-admin'],
      ends_at: iso(b.clock.now() + DAY),
    };
    expect((await refusal(acme.admin.call('POST', '/v1/relationships', proposal))).code).toBe(
      'not_a_provider',
    );
    expect((await refusal(acme.admin.call('GET', '/v1/customers'))).code).toBe('not_a_provider');
    // The provider cannot propose to a tenant that is not its customer (nor learn it exists).
    const stranger = await startTestBroker(b.ctx.store, { reuse: b, tenantName: 'initech' });
    expect(
      (await refusal(provider.admin.call('POST', '/v1/relationships', { ...proposal, customer: 'initech' })))
        .code,
    ).toBe('not_found');
    expect(stranger.tenant.kind).toBe('standalone');
    expect(await count('relationships')).toBe(before);
    // A key that is private is refused, and nothing is created.
    const { privateJwk } = await newKeyPair();
    const tenants = await count('principals');
    expect(
      (
        await refusal(
          provider.admin.call('POST', '/v1/customers', {
            name: 'leaky',
            admin: { name: 'z', key: privateJwk },
          }),
        )
      ).code,
    ).toBe('invalid_key');
    expect(await count('principals')).toBe(tenants);
  });

  it('grants nothing before the customer accepts, and nothing the relationship does not name', async () => {
    const ends = b.clock.now() + 30 * DAY;
    const proposed = await provider.admin.call<RelationshipView>('POST', '/v1/relationships', {
      customer: 'acme-corp',
      name: 'managed-firewall',
      groups: ['operators'],
      privileges: ['firewall-admin'],
      approvals: { customer: 1 },
      ends_at: iso(ends),
    });
    relationshipId = proposed.id;
    expect(proposed).toMatchObject({
      state: 'proposed',
      side: 'provider',
      customer: 'acme-corp',
      provider: 'msp',
    });
    // The customer sees it from its side.
    const seen = await acme.admin.call<RelationshipView>('GET', `/v1/relationships/${relationshipId}`);
    expect(seen).toMatchObject({ side: 'customer', groups: ['operators'], privileges: ['firewall-admin'] });
    // Not accepted: no seat, no request.
    const seats = await count('principals', acme.tenantId);
    expect((await refusal(operator.client.call('POST', '/v1/seats', { customer: 'acme-corp' }))).code).toBe(
      'not_covered_by_relationship',
    );
    expect(await count('principals', acme.tenantId)).toBe(seats);
    expect((await operator.client.call<EligibleCustomerList>('GET', '/v1/seats')).customers).toEqual([]);
    // Only the customer accepts; globex is no party to it.
    expect(
      (await refusal(provider.admin.call('POST', `/v1/relationships/${relationshipId}/accept`, {}))).code,
    ).toBe('forbidden');
    expect(
      (await refusal(globex.admin.call('POST', `/v1/relationships/${relationshipId}/accept`, {}))).code,
    ).toBe('not_found');
    // Bad proposals change nothing.
    const relationships = await count('relationships');
    for (const [body, code] of [
      [{ privileges: ['no-such'] }, 'not_found'],
      [{ groups: ['no-such'] }, 'not_found'],
      [{ ends_at: iso(b.clock.now() - 1000) }, 'invalid_relationship'],
      [{ ends_at: iso(b.clock.now() + 400 * DAY) }, 'invalid_relationship'],
      [
        {
          customer: 'globex',
          privileges: ['firewall-admin'],
          name: 'managed-firewall',
          approvals: { customer: 9 },
        },
        'invalid_request',
      ],
    ] as const) {
      const r = await refusal(
        provider.admin.call('POST', '/v1/relationships', {
          customer: 'acme-corp',
          name: 'bad',
          groups: ['operators'],
          privileges: ['firewall-admin'],
          ends_at: iso(ends),
          ...body,
        }),
      );
      expect(r.code).toBe(code);
    }
    expect(await count('relationships')).toBe(relationships);

    const accepted = await acme.admin.call<RelationshipView>(
      'POST',
      `/v1/relationships/${relationshipId}/accept`,
      {},
    );
    expect(accepted.state).toBe('active');
    expect(
      (await refusal(acme.admin.call('POST', `/v1/relationships/${relationshipId}/accept`, {}))).code,
    ).toBe('relationship_not_active');
    // Narrowing can never widen.
    expect(
      (
        await refusal(
          acme.admin.call('PATCH', `/v1/relationships/${relationshipId}`, {
            privileges: ['firewall-admin', 'db-admin'],
          }),
        )
      ).code,
    ).toBe('invalid_relationship');
    expect(
      (
        await refusal(
          acme.admin.call('PATCH', `/v1/relationships/${relationshipId}`, { ends_at: iso(ends + DAY) }),
        )
      ).code,
    ).toBe('invalid_relationship');
  });

  it('lets the operator ask in A with their one identity; A approves; A’s PEP allows, B’s and the provider’s refuse', async () => {
    const eligible = await operator.client.call<EligibleCustomerList>('GET', '/v1/seats');
    expect(eligible.customers).toEqual([
      expect.objectContaining({
        name: 'acme-corp',
        privileges: [expect.objectContaining({ name: 'firewall-admin' })],
      }),
    ]);
    // Someone outside the named groups has no seat; nor does anyone in globex.
    expect((await refusal(outsider.client.call('POST', '/v1/seats', { customer: 'acme-corp' }))).code).toBe(
      'not_covered_by_relationship',
    );
    expect((await refusal(operator.client.call('POST', '/v1/seats', { customer: 'globex' }))).code).toBe(
      'not_covered_by_relationship',
    );
    const taken = await operator.client.call<SeatView>('POST', '/v1/seats', { customer: 'acme-corp' });
    expect(taken).toMatchObject({
      customer: 'acme-corp',
      tenant: acme.tenantId,
      principal: { name: 'pat@msp' },
    });
    // The seat signs with the operator's own key: no key was made or copied for it.
    seat = clientOf(acme.tenantId, taken.principal.id, operator.identity.key);
    const keys = await b.ctx.store.db
      .selectFrom('principal_keys')
      .select('kid')
      .where('principal_id', '=', taken.principal.id)
      .execute();
    expect(keys).toEqual([]);
    // The customer's admin cannot make the seat an admin, give it a key or a passkey, or put it in a group.
    for (const attempt of [
      () => acme.admin.call('PATCH', `/v1/principals/${taken.principal.id}`, { roles: ['admin'] }),
      async () =>
        acme.admin.call('POST', `/v1/principals/${taken.principal.id}/keys`, {
          jwk: (await newKeyPair()).publicJwk,
        }),
      () => acme.admin.call('POST', `/v1/principals/${taken.principal.id}/invitations`, {}),
      () => acme.admin.call('PUT', `/v1/groups/approvers/members/${taken.principal.id}`),
    ])
      expect((await refusal(attempt())).code).toBe('seat_restricted');

    // A privilege the relationship does not name: refused, nothing written.
    const requests = await count('access_requests', acme.tenantId);
    const notNamed = await refusal(
      seat.call('POST', '/v1/requests', {
        privilege: 'db-admin',
        justification: 'look around',
        duration: 600,
      }),
    );
    expect(notNamed.code).toBe('not_covered_by_relationship');
    expect(await count('access_requests', acme.tenantId)).toBe(requests);

    const asked = await seat.call<RequestView>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'ACME-7',
      justification: 'open 443 for the release',
      duration: 3600,
    });
    expect(asked.state).toBe('pending');
    // The seat cannot approve its own request; A's approver does.
    expect((await refusal(seat.call('POST', `/v1/requests/${asked.id}/approve`, {}))).status).toBe(403);
    const approved = await acme.approver!.call<RequestView>('POST', `/v1/requests/${asked.id}/approve`, {});
    expect(approved.state).toBe('approved');
    session = await BoundSession.activate(seat, asked.id, undefined, { resourceFetch });
    const view = await acme.admin.call<SessionView>('GET', `/v1/sessions/${session.info.id}`);
    expect(view.state).toBe('active');

    // No identity reaches across tenants: an identity file naming another tenant changes nothing,
    // since the broker takes the tenant from the principal the key signed for, never from the caller.
    const forged: [BrokerClient, string][] = [
      [clientOf(acme.tenantId, b.adminIdentity.principal, b.adminIdentity.key), 'msp'],
      [clientOf(globex.tenantId, taken.principal.id, operator.identity.key), 'acme-corp'],
      [clientOf(provider.tenantId, taken.principal.id, operator.identity.key), 'acme-corp'],
    ];
    for (const [client, home] of forged)
      expect((await client.call<{ tenant: { name: string } }>('GET', '/v1/me')).tenant.name).toBe(home);
    // The seat itself administers nothing in the customer tenant.
    expect((await refusal(seat.call('PUT', '/v1/policies', { policies: {} }))).code).toBe('forbidden');
    expect(
      (
        await refusal(
          seat.call('POST', '/v1/privileges', {
            name: 'mine',
            actions: ['a'],
            resources: ['r'],
            audiences: [AUDIENCE],
            max_duration: 60,
          }),
        )
      ).code,
    ).toBe('forbidden');

    expect((await callAt(session, acme)).status).toBe(200);
    // The same audience at B and at the provider: refused, always (tenant isolation).
    for (const other of [globex, provider]) {
      const answer = await callAt(session, other);
      expect(answer.status).toBe(401);
      expect(JSON.stringify(await answer.json())).toContain('invalid_token');
    }
  });

  it('ends the session at A’s PEP within the bound, with a receipt, when A ends the relationship', async () => {
    const pending = await seat.call<RequestView>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      justification: 'a second change',
      duration: 600,
    });
    const started = performance.now();
    const ended = await acme.admin.call<RelationshipOutcome>(
      'POST',
      `/v1/relationships/${relationshipId}/end`,
      {},
    );
    expect(ended).toMatchObject({
      sessions_ended: 1,
      requests_cancelled: 1,
      relationship: { state: 'ended', end_reason: 'ended_by_customer' },
    });
    await eventually(
      async () => (await callAt(session, acme)).status === 401,
      5000,
      'A’s PEP refuses the session',
    );
    const refusedAfterMs = performance.now() - started;
    console.log(`relationship end → A's PEP refuses: ${refusedAfterMs.toFixed(0)} ms`);
    expect(refusedAfterMs).toBeLessThan(5000);
    // The customer's admin reads the receipt: which of its PEPs enforced the end, and when.
    await eventually(
      async () =>
        (await acme.admin.call<{ enforced: boolean }>('GET', `/v1/sessions/${session.info.id}/receipt`))
          .enforced,
      5000,
      'the receipt',
    );
    const view = await acme.admin.call<SessionView>('GET', `/v1/sessions/${session.info.id}`);
    expect(view).toMatchObject({ state: 'ended', end_reason: 'relationship_ended' });
    expect((await acme.admin.call<RequestView>('GET', `/v1/requests/${pending.id}`)).state).toBe('cancelled');
    // The seat's standing is gone at once: its API token is refused, and nothing can be asked.
    expect((await refusal(seat.call('GET', '/v1/requests'))).code).toBe('not_covered_by_relationship');
    expect((await refusal(operator.client.call('POST', '/v1/seats', { customer: 'acme-corp' }))).code).toBe(
      'not_covered_by_relationship',
    );
    expect((await refusal(acme.admin.call('POST', `/v1/relationships/${relationshipId}/end`, {}))).code).toBe(
      'relationship_not_active',
    );
  });

  it('keeps both audit chains verifiable, each recording the relationship from its own side', async () => {
    for (const side of [provider, acme]) {
      const verified = await side.admin.call<AuditVerificationView>('GET', '/v1/audit/verify');
      expect(verified.ok).toBe(true);
    }
    const trail = async (side: Side) =>
      (await side.admin.call<AuditRecordList>('GET', '/v1/audit?limit=1000')).records.filter(
        (r) => r.target === relationshipId,
      );
    const customerSide = await trail(acme);
    const providerSide = await trail(provider);
    for (const records of [customerSide, providerSide])
      expect(records.map((r) => r.action)).toEqual(
        expect.arrayContaining(['relationship.proposed', 'relationship.accepted', 'relationship.ended']),
      );
    // Each chain names its own people as themselves and the other side's by side.
    const accepted = (records: typeof customerSide) =>
      records.find((r) => r.action === 'relationship.accepted')!;
    expect(accepted(customerSide).actor).not.toContain(':');
    expect(accepted(providerSide).actor).toMatch(/^customer:/);
    // The operator's request and session are in the customer's chain, by its seat.
    const acmeAll = (await acme.admin.call<AuditRecordList>('GET', '/v1/audit?limit=1000')).records;
    expect(acmeAll.map((r) => r.action)).toEqual(
      expect.arrayContaining(['request.created', 'session.activated', 'session.ended']),
    );
    // The provider sees its operators' activity in the customer, as the customer's chain has it,
    // and nothing else of the customer's; a customer cannot read it, nor the provider another tenant's.
    const activity = (
      await provider.admin.call<AuditRecordList>('GET', '/v1/customers/acme-corp/activity?limit=1000')
    ).records;
    expect(activity.map((r) => r.action)).toEqual(
      expect.arrayContaining([
        'request.created',
        'request.review.approve',
        'session.activated',
        'session.ended',
      ]),
    );
    const seatRecord = activity.find((r) => r.action === 'request.created')!;
    expect(acmeAll.some((r) => r.seq === seatRecord.seq && r.hash === seatRecord.hash)).toBe(true);
    expect(activity.some((r) => r.action === 'tenant.created' || r.actor === 'anna')).toBe(false);
    expect((await refusal(acme.admin.call('GET', '/v1/customers/acme-corp/activity'))).code).toBe(
      'not_a_provider',
    );
    expect((await refusal(provider.admin.call('GET', '/v1/customers/initech/activity'))).code).toBe(
      'not_found',
    );
  });

  it('grants nothing under a relationship row changed in the database (sealed under the KEK)', async () => {
    const widened = await provider.admin.call<RelationshipView>('POST', '/v1/relationships', {
      customer: 'globex',
      name: 'proposed-only',
      groups: ['operators'],
      privileges: ['firewall-admin'],
      ends_at: iso(b.clock.now() + DAY),
    });
    // Someone with database access marks it accepted without the customer.
    await sql`update relationships set state = 'active' where id = ${widened.id}`.execute(b.ctx.store.db);
    expect((await refusal(operator.client.call('POST', '/v1/seats', { customer: 'globex' }))).code).toBe(
      'not_covered_by_relationship',
    );
    expect((await refusal(globex.admin.call('GET', `/v1/relationships/${widened.id}`))).code).toBe(
      'relationship_tampered',
    );
  });

  it('caps a session at the relationship’s end and ends it there (fake clock)', async () => {
    const now = b.clock.now();
    const short = await provider.admin.call<RelationshipView>('POST', '/v1/relationships', {
      customer: 'acme-corp',
      name: 'two-hours',
      groups: ['operators'],
      privileges: ['firewall-admin'],
      ends_at: iso(now + 2 * 3600_000),
    });
    await acme.admin.call('POST', `/v1/relationships/${short.id}/accept`, {});
    const taken = await operator.client.call<SeatView>('POST', '/v1/seats', { customer: 'acme-corp' });
    const again = clientOf(acme.tenantId, taken.principal.id, operator.identity.key);
    const asked = await again.call<RequestView>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      justification: 'a long change',
      duration: 4 * 3600,
    });
    await acme.approver!.call('POST', `/v1/requests/${asked.id}/approve`, {});
    const capped = await BoundSession.activate(again, asked.id, undefined, { resourceFetch });
    const view = await acme.admin.call<SessionView>('GET', `/v1/sessions/${capped.info.id}`);
    expect(Date.parse(view.hard_expires_at)).toBe(now + 2 * 3600_000);
    b.clock.advance(2 * 3600_000 + 1000);
    await sweepOnce(b.ctx);
    const after = await acme.admin.call<SessionView>('GET', `/v1/sessions/${capped.info.id}`);
    expect(after).toMatchObject({ state: 'ended', end_reason: 'relationship_ended' });
    const rel = await acme.admin.call<RelationshipView>('GET', `/v1/relationships/${short.id}`);
    expect(rel).toMatchObject({ state: 'ended', end_reason: 'expired' });
  });
});
