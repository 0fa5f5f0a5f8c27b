import { randomUUID } from 'node:crypto';
import type { IdentityFile } from '@tether-broker/protocol';
import type { CustomerView, RelationshipView, RequestView } from '@tether-broker/protocol/api';
import { importJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  BoundSession,
  type BrokerClient,
  createClientAssertion,
  createDpopProof,
  generateSessionKey,
} from '../../packages/client/src/index.js';
import { newKeyPair, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type OpenApiDocument, type RouteSpec, routeSpecs } from '../support/fuzz-inputs.js';
import { type StoreFixture, storeTableColumns } from '../support/stores.js';
import { deliver, genericTicket } from '../tickets/deliveries.js';
import {
  auditHeads,
  type Case,
  DAY,
  type Expect,
  iso,
  LAST_ROUTES,
  PAIRS,
  PUBLIC_ROUTES,
  ROUTE_FLOOR,
  readAll,
  refusalProblem,
  SHARED_WITH_CUSTOMER,
  SHARED_WITH_PROVIDER,
  type Side,
  snapshotAll,
  type Who,
  withDecodedTokens,
} from './tenant-isolation-checks.js';

/**
 * Tenant isolation on every route, both ways (issue 14 acceptance: "tenant isolation tested both
 * ways on every route"). One broker holds three tenants with real data in each: two customers
 * (alpha, beta) and their provider (zeta), with an accepted relationship zeta→alpha (and a seat
 * taken under it) and a proposed one zeta→beta. Every route the app serves (read from the route
 * tree and `/openapi.json`, so a new route is covered without touching this file) is called as
 * each tenant's admin against each other tenant's objects: path parameters filled with the other
 * tenant's ids and names, bodies and queries naming its principals, privileges, groups, tickets.
 *
 * Each answer must be a 4xx in the documented error shape, or (for routes scoped by the caller,
 * such as a list or a create) a 2xx that holds none of the other tenant's ids or names. No
 * tenant but the caller's may change: its audit chain head is compared after every request, and
 * every row of every table that belongs to it (by `tenant_id`, or by naming one of its rows'
 * ids) after each caller's requests on each route.
 * The provider sees its customers only through the relationship views, and then only what a
 * relationship shares (tenant, relationship, the privileges and groups it names).
 */

export function tenantIsolationSuite(fixture: StoreFixture): void {
  let b: TestBroker;
  let routes: RouteSpec[];
  const sides = new Map<Side['tag'], Side>();
  let relAlpha: string;
  let relBeta: string;
  let seatId: string;
  let seatName: string;
  let columns: Map<string, string[]>;
  /** Per tenant: the values (ids, names) of its rows as set up. */
  let secrets: Map<string, Set<string>>;
  let counter = 0;
  const fresh = (tag: string) => `${tag}-new-${++counter}`;

  afterAll(async () => {
    await b?.close();
    await fixture.cleanup();
  });

  const clientOf = (tenant: string, principal: string, key: unknown): BrokerClient =>
    b.client({ broker: PUBLIC_URL, tenant, principal, key } as IdentityFile);

  /** A tenant's people, group, privilege, policies, PEP, requests, session, webhook, ticket… */
  async function furnish(
    tag: Side['tag'],
    tenant: Who,
    admin: BrokerClient,
    identity: IdentityFile,
  ): Promise<Side> {
    const person = async (name: string, kind: string, roles: string[] = []) => {
      const { privateJwk, publicJwk } = await newKeyPair();
      const p = await admin.call<{ id: string }>('POST', '/v1/principals', {
        name,
        kind,
        roles,
        keys: [publicJwk],
      });
      return { id: p.id, name, kid: String(privateJwk.kid), client: clientOf(tenant.id, p.id, privateJwk) };
    };
    const requester = await person(`${tag}-requester`, 'human');
    const approver = await person(`${tag}-approver`, 'human');
    const pep = await person(`${tag}-pep`, 'service', ['pep']);
    await person(`${tag}-bot`, 'pipeline');
    const receiver = await person(`${tag}-receiver`, 'service', ['receiver']);
    const stream = await receiver.client.call<{ stream_id: string }>('POST', '/v1/ssf/streams', {
      delivery: { method: 'urn:ietf:rfc:8936' },
      description: `${tag} downstream`,
    });
    const audience = `https://fw.${tag}.example`;
    await admin.call('PUT', `/v1/peps/${pep.id}/audiences`, { audiences: [audience] });
    const group = await admin.call<{ id: string }>('POST', '/v1/groups', { name: `${tag}-requesters` });
    const approvers = await admin.call<{ id: string }>('POST', '/v1/groups', { name: `${tag}-approvers` });
    await admin.call('PUT', `/v1/groups/${tag}-requesters/members/${requester.name}`);
    await admin.call('PUT', `/v1/groups/${tag}-approvers/members/${approver.name}`);
    expect(approvers.id).toBeTruthy();
    const privilege = await admin.call<{ id: string }>('POST', '/v1/privileges', {
      name: `${tag}-firewall`,
      actions: ['firewall:rules.write'],
      resources: ['firewall/edge-*'],
      audiences: [audience],
      max_duration: 4 * 3600,
      approval: { approvals: 1, approvers: { groups: [`${tag}-approvers`] } },
      ticket: { required: false },
    });
    await admin.call('PUT', '/v1/policies', {
      policies: {
        [`${tag}-request`]: `permit(principal in Tether::Group::"${tag}-requesters", action == Tether::Action::"request", resource);`,
        [`${tag}-approve`]: `permit(principal in Tether::Group::"${tag}-approvers", action == Tether::Action::"approve", resource) when { principal != context.requester };`,
      },
    });
    const ask = (why: string) =>
      requester.client.call<RequestView>('POST', '/v1/requests', {
        privilege: `${tag}-firewall`,
        justification: why,
        duration: 1800,
      });
    const pending = await ask('left pending');
    const active = await ask('approved and activated');
    await approver.client.call('POST', `/v1/requests/${active.id}/approve`, {});
    const session = await BoundSession.activate(requester.client, active.id);
    // A session that ended: an event in the tenant's revocation log, which its PEPs follow.
    const ended = await ask('activated, then ended');
    await approver.client.call('POST', `/v1/requests/${ended.id}/approve`, {});
    const endedSession = await BoundSession.activate(requester.client, ended.id);
    await admin.call('POST', `/v1/sessions/${endedSession.info.id}/end`, {});
    const webhook = await admin.call<{ id: string; secret: string; url: string }>('POST', '/v1/webhooks', {
      kind: 'generic',
      name: `${tag}-tickets`,
    });
    const ticket = `${tag.toUpperCase()}-4411`;
    const fed = await deliver(
      b,
      webhook,
      genericTicket(webhook.secret, { state: 'open', at: b.clock.now(), ref: ticket }),
    );
    expect(fed.statusCode, fed.body).toBe(200);
    const tx = await newKeyPair();
    const txKid = `${tag}-idp-1`;
    const transmitter = await admin.call<{ id: string; audience: string }>(
      'POST',
      '/v1/signal-transmitters',
      {
        name: `${tag}-idp`,
        issuer: `https://idp.${tag}.example`,
        jwks: { keys: [{ ...tx.publicJwk, kid: txKid }] },
      },
    );
    // Optional objects: kept when the broker takes them as written here.
    const optional = async (path: string, body: unknown): Promise<Who | undefined> => {
      try {
        const made = await admin.call<{ id: string; name: string }>('POST', path, body);
        return { id: made.id, name: made.name };
      } catch (err) {
        console.log(`tenant isolation: ${tag} has no ${path} (${(err as Error).message})`);
        return undefined;
      }
    };
    const channel = await optional('/v1/notification-channels', {
      name: `${tag}-hook`,
      kind: 'webhook',
      events: ['request.pending'],
      url: `https://hooks.${tag}.example/notify`,
    });
    const connector = await optional('/v1/connectors', {
      name: `${tag}-conn`,
      kind: 'webhook',
      url: `https://conn.${tag}.example/hook`,
    });
    const federation = await optional('/v1/federations', {
      name: `${tag}-federation`,
      issuer: `https://issuer.${tag}.example`,
      audience: `${PUBLIC_URL}/tenants/${tenant.name}`,
      jwks: { keys: [{ ...(await newKeyPair()).publicJwk, kid: `${tag}-f1` }] },
      principal_mapping: [{ match: { sub: '*' }, principal: `${tag}-bot` }],
    });
    return {
      tag,
      tenant,
      admin,
      adminId: identity.principal,
      adminKid: String((identity.key as { kid?: string }).kid),
      identity,
      token: await admin.bearerToken(),
      requester: { ...requester, token: await requester.client.bearerToken() },
      approver,
      pep: { ...pep, token: await pep.client.bearerToken() },
      receiver: { ...receiver, token: await receiver.client.bearerToken() },
      stream: stream.stream_id,
      group: { id: group.id, name: `${tag}-requesters` },
      privilege: { id: privilege.id, name: `${tag}-firewall` },
      audience,
      pending: pending.id,
      active: active.id,
      session: session.info.id,
      endedSession: endedSession.info.id,
      sessionToken: await session.accessToken(),
      webhook: { ...webhook, name: `${tag}-tickets` },
      ticket,
      transmitter: {
        id: transmitter.id,
        name: `${tag}-idp`,
        issuer: `https://idp.${tag}.example`,
        audience: transmitter.audience,
        key: tx.privateJwk as Record<string, unknown>,
        kid: txKid,
      },
      ...(channel ? { channel } : {}),
      ...(connector ? { connector } : {}),
      ...(federation ? { federation } : {}),
    };
  }

  beforeAll(async () => {
    b = await startTestBroker(await fixture.open(), { tenantName: 'zeta-provider', tenantKind: 'provider' });
    const providerAdmin = b.client(b.adminIdentity);
    const onboard = async (tag: 'alpha' | 'beta') => {
      const { privateJwk, publicJwk } = await newKeyPair();
      const made = await providerAdmin.call<CustomerView>('POST', '/v1/customers', {
        name: `${tag}-customer`,
        admin: { name: `${tag}-root`, key: publicJwk },
      });
      const identity = {
        broker: PUBLIC_URL,
        tenant: made.tenant.id,
        principal: made.admin.id,
        key: privateJwk as Record<string, unknown>,
      };
      sides.set(
        tag,
        await furnish(tag, { id: made.tenant.id, name: made.tenant.name }, b.client(identity), identity),
      );
    };
    sides.set(
      'zeta',
      await furnish('zeta', { id: b.tenant.id, name: b.tenant.name }, providerAdmin, b.adminIdentity),
    );
    await onboard('alpha');
    await onboard('beta');
    const alpha = sides.get('alpha')!;
    const zeta = sides.get('zeta')!;
    const propose = (customer: string, name: string, privilege: string) =>
      providerAdmin.call<RelationshipView>('POST', '/v1/relationships', {
        customer,
        name,
        groups: [zeta.group.name],
        privileges: [privilege],
        approvals: { customer: 1 },
        ends_at: iso(b.clock.now() + 30 * DAY),
      });
    relAlpha = (await propose('alpha-customer', 'zeta-alpha-managed', 'alpha-firewall')).id;
    await alpha.admin.call('POST', `/v1/relationships/${relAlpha}/accept`, {});
    relBeta = (await propose('beta-customer', 'zeta-beta-proposed', 'beta-firewall')).id;
    const seat = await zeta.requester.client.call<{ principal: { id: string } }>('POST', '/v1/seats', {
      customer: 'alpha-customer',
    });
    seatId = seat.principal.id;
    seatName = `${zeta.requester.name}@${zeta.tenant.name}`;

    const doc = JSON.parse((await b.app.inject({ url: '/openapi.json' })).body) as OpenApiDocument;
    routes = routeSpecs(b.app.printRoutes({ commonPrefix: false }), doc);
    const name = (r: RouteSpec) => `${r.method} ${r.path}`;
    routes.sort((x, y) => LAST_ROUTES.indexOf(name(x)) - LAST_ROUTES.indexOf(name(y)));
    await b.ctx.reevaluation.idle();
    columns = await storeTableColumns(b.ctx.store);
    const state = await snapshotAll(
      b.ctx.store,
      columns,
      [...sides.values()].map((s) => s.tenant.id),
    );
    secrets = new Map([...state].map(([t, s]) => [t, s.values]));
  }, 120_000);

  const side = (tag: Side['tag']) => sides.get(tag)!;

  /**
   * What a tenant's relationship shares with the other party, which the relationship views
   * (and the customer's own records of it) may show: both tenants, the relationship, the
   * privileges and groups it names, and the seat taken under it.
   */
  function shared(viewer: Side, owner: Side): Set<string> {
    const pair = [viewer.tag, owner.tag].sort().join('+');
    const out = new Set<string>();
    if (pair !== 'alpha+zeta' && pair !== 'beta+zeta') return out;
    const customer = viewer.tag === 'zeta' ? owner : viewer;
    const provider = side('zeta');
    out.add(customer.tenant.id).add(customer.tenant.name).add(provider.tenant.id).add(provider.tenant.name);
    out.add(customer.privilege.name).add(customer.privilege.id);
    out.add(provider.group.name).add(provider.group.id);
    // The provider made the customer's first admin (its chain records the name, id and key);
    // the customer's chain names the provider's people who acted in it by id.
    out.add(customer.adminId).add(`${customer.tag}-root`).add(customer.adminKid);
    out.add(provider.adminId);
    if (customer.tag === 'alpha') {
      out.add(relAlpha).add('zeta-alpha-managed').add(seatId).add(seatName);
      out.add(provider.requester.id).add(provider.requester.name);
    } else out.add(relBeta).add('zeta-beta-proposed');
    return out;
  }

  /** Values for one path parameter, aimed at the victim (the attacker's own where `own`). */
  function paramValues(method: string, path: string, param: string, v: Side, a: Side): string[] {
    const key = `${path}#${param}`;
    const pick = (s: Side): Record<string, string[]> => ({
      'principals#ref': [s.requester.name, s.requester.id],
      'principals#kid': [s.requester.kid],
      'groups#ref': [s.group.name, s.group.id],
      'groups#principal': [s.requester.name, s.requester.id],
      'privileges#ref': [s.privilege.name, s.privilege.id],
      'policies#version': ['1'],
      'requests#id': [s.pending, s.active],
      'sessions#id': [s.session, s.endedSession],
      'webhooks#ref': [s.webhook.name, s.webhook.id],
      'webhooks#id': [s.webhook.id],
      'tickets#ref': [s.ticket],
      'peps#pep': [s.pep.id, s.pep.name],
      'signal-transmitters#ref': [s.transmitter.name, s.transmitter.id],
      'connectors#ref': s.connector ? [s.connector.name, s.connector.id] : [`${s.tag}-conn`],
      'federations#ref': s.federation ? [s.federation.name, s.federation.id] : [`${s.tag}-federation`],
      'notification-channels#ref': s.channel ? [s.channel.name, s.channel.id] : [`${s.tag}-hook`],
      'customers#name': [s.tenant.name],
      'tenants#id': [s.tenant.id],
      'status-lists#n': ['1', '2'],
      'ssf#stream_id': [s.stream],
      'access#id': [s.pending],
      'access#template': [s.privilege.name],
      'console#tenant': [s.tenant.id, s.tenant.name],
      // A relationship the attacker is no party to; the provider is party to every one, so it
      // reads the customer's (a relationship view) and tries to accept it for the customer.
      'relationships#id':
        a.tag === 'zeta'
          ? /GET|accept/.test(method)
            ? [s.tag === 'alpha' ? relAlpha : relBeta]
            : []
          : [a.tag === 'alpha' ? relBeta : relAlpha],
    });
    const segments = path.split('/').filter(Boolean);
    const area = segments[0] === 'v1' ? segments[1] : segments[0] === 'access' ? 'access' : segments[0];
    const k = `${area}#${param}`;
    const values = pick(v)[k];
    if (!values) throw new Error(`no victim values for ${key}: add them to paramValues`);
    return values;
  }

  /** The cases for one route and one (attacker, victim) pair. */
  async function casesFor(route: RouteSpec, a: Side, v: Side): Promise<Case[]> {
    const name = `${route.method} ${route.path}`;
    const base: Omit<Case, 'url' | 'expect'> = {
      route: name,
      attacker: a,
      victim: v,
      method: route.method,
      headers: { authorization: `Bearer ${a.token}` },
    };
    // Path parameters: the victim's values, and for two-parameter routes one of each side.
    const combos: Record<string, string>[] = [];
    const params = route.params.map((p) => p.name);
    if (params.length === 0) combos.push({});
    else {
      const lists = params.map((p) => paramValues(`${route.method} ${route.path}`, route.path, p, v, a));
      const own = params.map((p) => paramValues(`${route.method} ${route.path}`, route.path, p, a, a));
      if (lists.some((l) => l.length === 0)) return [];
      if (params.length === 1) for (const x of lists[0] ?? []) combos.push({ [params[0]!]: x });
      else {
        const [p0, p1] = params as [string, string];
        combos.push({ [p0]: lists[0]![0]!, [p1]: lists[1]![0]! });
        combos.push({ [p0]: lists[0]![1] ?? lists[0]![0]!, [p1]: lists[1]![1] ?? lists[1]![0]! });
        // Cross references: the attacker's own object with the victim's, both ways.
        combos.push({ [p0]: own[0]![0]!, [p1]: lists[1]![0]! });
        combos.push({ [p0]: lists[0]![0]!, [p1]: own[1]![0]! });
      }
    }
    const expectFor = (): Expect => {
      if (PUBLIC_ROUTES.has(name)) return 'public';
      // Numbered per tenant: version 1 is the caller's own.
      if (name === 'GET /v1/policies/versions/{version}') return 'scoped';
      // A ticket ref is the ticket system's key, per tenant: closing one the caller's register
      // does not hold records it, closed, in the caller's own register.
      if (name === 'POST /v1/tickets/{ref}/close') return 'scoped';
      if (name === 'GET /v1/customers/{name}/activity' && a.tag === 'zeta') return 'scoped';
      if (name === 'GET /v1/relationships/{id}' && a.tag === 'zeta') return 'scoped';
      if (params.length > 0) return 'refuse';
      if (
        ['POST /v1/requests', 'POST /v1/seats', 'POST /v1/relationships', 'POST /v1/decisions'].includes(name)
      )
        return 'refuse';
      return 'scoped';
    };
    const body = await bodyFor(name, a, v);
    const out: Case[] = [];
    for (const combo of combos) {
      let path = route.path;
      for (const [k, x] of Object.entries(combo)) path = path.replace(`{${k}}`, encodeURIComponent(x));
      const c: Case = { ...base, url: path, expect: expectFor() };
      if (body) {
        c.headers = { ...c.headers, ...body.headers };
        c.payload = body.payload;
      }
      out.push(c);
      // A query naming the victim's objects, on routes that filter by them.
      const query = queryFor(route, v);
      if (query) out.push({ ...c, url: `${path}?${query}`, note: 'query' });
    }
    if (name === 'POST /v1/signals')
      out.push({ ...out[0]!, payload: await signedSet(a, v, true), expect: 'refuse', note: 'forged issuer' });
    // The same, as the attacker's principal whose role the route is for.
    const as = (token: string, note: string) => {
      for (const c of out.filter((x) => !x.note?.startsWith('as ')))
        out.push({ ...c, headers: { ...c.headers, authorization: `Bearer ${token}` }, note: `as ${note}` });
    };
    // The requester: the provider's operator (in the group the relationships name) for seats.
    if (/^POST \/v1\/(requests(\/\{id\}\/activate)?|seats)$/.test(name)) as(a.requester.token, 'requester');
    if (/^(POST|GET) \/v1\/(peps\/|decisions|events)|\/access\/v1\/|\/oauth\/introspect/.test(name))
      as(a.pep.token, 'pep');
    if (name.includes('/v1/ssf/')) as(a.receiver.token, 'receiver');
    // The one legitimate reach: the provider's operator takes (again) its seat in the customer
    // whose relationship accepted it; it may show what the relationship shares, nothing else.
    if (name === 'POST /v1/seats' && a.tag === 'zeta' && v.tag === 'alpha')
      for (const c of out) if (c.note === 'as requester') c.expect = 'scoped';
    // Activation and credential collection with a valid DPoP proof of a key the attacker holds.
    if (/^POST \/v1\/(requests\/\{id\}\/activate|sessions\/\{id\}\/credentials)$/.test(name)) {
      const key = await generateSessionKey();
      for (const c of out.filter((x) => x.note === 'as requester' || name.includes('credentials'))) {
        const proof = await createDpopProof(key, {
          method: 'POST',
          url: `${PUBLIC_URL}${c.url}`,
          now: b.clock.now(),
        });
        out.push({
          ...c,
          headers: { ...c.headers, authorization: `Bearer ${a.requester.token}`, dpop: proof },
          note: 'dpop',
        });
      }
    }
    if (/^POST \/v1\/sessions\/\{id\}\/(extend|end)$/.test(name)) as(a.requester.token, 'requester');
    return out;
  }

  function queryFor(route: RouteSpec, v: Side): string | undefined {
    const declared = Object.keys(route.query.properties ?? {});
    const values: Record<string, string> = {
      principal: v.requester.name,
      privilege: v.privilege.name,
      ticket: v.ticket,
      request: v.pending,
      session: v.session,
      source: v.webhook.name,
      tenant: v.tenant.id,
      stream_id: v.stream,
      // The revocation feed from its first event.
      after: '0',
    };
    const q = new URLSearchParams();
    for (const d of declared) if (values[d]) q.set(d, values[d]);
    return q.size > 0 ? q.toString() : undefined;
  }

  const json = (x: unknown) => ({
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(x),
  });
  const form = (x: Record<string, string>) => ({
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams(x).toString(),
  });

  /**
   * A CAEP session-revoked SET about the victim's principal, signed with the attacker's own
   * transmitter key: from the attacker's issuer to its audience, or (`forge`) claiming the
   * victim's issuer and audience.
   */
  async function signedSet(a: Side, v: Side, forge: boolean): Promise<string> {
    const key = await importJWK(a.transmitter.key, 'EdDSA');
    const subject = { format: 'opaque', id: v.requester.id };
    return new SignJWT({
      jti: randomUUID(),
      sub_id: subject,
      events: {
        'https://schemas.openid.net/secevent/caep/event-type/session-revoked': {
          event_timestamp: Math.floor(b.clock.now() / 1000),
        },
      },
    })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'secevent+jwt', kid: a.transmitter.kid })
      .setIssuer(forge ? v.transmitter.issuer : a.transmitter.issuer)
      .setAudience(forge ? v.transmitter.audience : a.transmitter.audience)
      .setIssuedAt(Math.floor(b.clock.now() / 1000))
      .sign(key);
  }

  /** A body that names the victim's objects wherever the route's body references any. */
  async function bodyFor(
    name: string,
    a: Side,
    v: Side,
  ): Promise<{ headers: Record<string, string>; payload: string } | undefined> {
    const zeta = side('zeta');
    switch (name) {
      case 'POST /v1/requests':
        return json({ privilege: v.privilege.name, justification: 'cross-tenant', duration: 600 });
      case 'POST /v1/requests/{id}/approve':
      case 'POST /v1/requests/{id}/deny':
        return json({ comment: 'cross-tenant' });
      case 'POST /v1/requests/{id}/cancel':
        return json({ reason: 'cross-tenant' });
      case 'POST /v1/sessions/{id}/extend':
        return json({ by: 60, justification: 'cross-tenant' });
      case 'POST /v1/sessions/{id}/recording':
        return json({ proof: 'x', data: 'eA' });
      case 'POST /v1/sessions/revoke':
        return json({ principal: v.requester.name, privilege: v.privilege.name, note: 'cross-tenant' });
      case 'PATCH /v1/principals/{ref}':
        return json({ enabled: false, roles: ['admin'] });
      case 'POST /v1/principals/{ref}/keys':
        return json({ jwk: (await newKeyPair()).publicJwk });
      case 'PATCH /v1/privileges/{ref}':
        return json({
          description: 'cross-tenant',
          approval: { approvals: 1, approvers: { groups: [a.group.name] } },
        });
      case 'POST /v1/principals':
        return json({ name: fresh(a.tag), kind: 'human', roles: ['auditor'] });
      case 'POST /v1/groups':
        return json({ name: fresh(a.tag) });
      case 'POST /v1/privileges':
        return json({
          name: fresh(a.tag),
          actions: ['x:y'],
          resources: ['r/*'],
          audiences: [a.audience],
          approval: { approvals: 1, approvers: { groups: [v.group.name] } },
          ticket: { required: false },
        });
      case 'PUT /v1/policies':
      case 'POST /v1/policies/validate':
        return json({
          policies: {
            [`${a.tag}-request`]: `permit(principal in Tether::Group::"${a.tag}-requesters", action == Tether::Action::"request", resource);`,
            [`${a.tag}-approve`]: `permit(principal in Tether::Group::"${a.tag}-approvers", action == Tether::Action::"approve", resource) when { principal != context.requester };`,
            [`${a.tag}-reach`]: `permit(principal in Tether::Group::"${v.group.id}", action == Tether::Action::"request", resource);`,
          },
        });
      case 'POST /v1/webhooks':
        return json({ kind: 'generic', name: fresh(a.tag) });
      case 'POST /v1/webhooks/github/{id}':
      case 'POST /v1/webhooks/jira/{id}':
      case 'POST /v1/webhooks/generic/{id}': {
        // Signed with the attacker's own webhook secret, naming the victim's ticket.
        const d = genericTicket(a.webhook.secret, { state: 'closed', at: b.clock.now(), ref: v.ticket });
        return { headers: d.headers, payload: d.body };
      }
      case 'POST /v1/tickets/{ref}/close':
        return json({ note: 'cross-tenant' });
      case 'POST /v1/peps/{pep}/ack':
        return json({ applied: 1 });
      case 'PUT /v1/peps/{pep}/audiences':
        return json({ audiences: [a.audience] });
      case 'POST /v1/decisions':
        return json({
          audience: v.audience,
          decisions: [
            {
              at: b.clock.now(),
              allow: true,
              code: 'allowed',
              action: 'firewall:rules.write',
              resource: 'firewall/edge-1',
              session: v.session,
            },
          ],
          dropped: 0,
        });
      case 'POST /v1/signal-transmitters':
        return json({
          name: fresh(a.tag),
          issuer: `https://idp.${a.tag}-${counter}.example`,
          jwks: { keys: [{ ...(await newKeyPair()).publicJwk, kid: 'k1' }] },
        });
      case 'POST /v1/signals':
        return {
          headers: { 'content-type': 'application/secevent+jwt' },
          payload: await signedSet(a, v, false),
        };
      case 'POST /v1/notification-channels':
        return json({
          name: fresh(a.tag),
          kind: 'webhook',
          events: ['request.pending'],
          url: 'https://hooks.example/x',
        });
      case 'POST /v1/connectors':
        return json({ name: fresh(a.tag), kind: 'webhook', url: 'https://conn.example/x' });
      case 'POST /v1/federations':
        return json({
          name: fresh(a.tag),
          issuer: `https://issuer.${a.tag}-${counter}.example`,
          audience: `${PUBLIC_URL}/tenants/${a.tenant.name}`,
          jwks: { keys: [{ ...(await newKeyPair()).publicJwk, kid: 'f1' }] },
          principal_mapping: [{ match: { sub: '*' }, principal: `${v.tag}-bot` }],
        });
      case 'POST /v1/customers':
        return json({ name: fresh(a.tag), admin: { name: 'new-root', key: (await newKeyPair()).publicJwk } });
      case 'POST /v1/relationships':
        // The provider proposes to its other customer with this customer's privilege; a
        // customer tries to propose at all.
        return json({
          customer:
            a.tag === 'zeta' ? (v.tag === 'alpha' ? 'beta-customer' : 'alpha-customer') : v.tenant.name,
          name: fresh(a.tag),
          groups: [a.tag === 'zeta' ? zeta.group.name : v.group.name],
          privileges: [v.privilege.name],
          ends_at: iso(b.clock.now() + DAY),
        });
      case 'PATCH /v1/relationships/{id}':
        return json({ privileges: [v.privilege.name] });
      case 'POST /v1/seats':
        return json({ customer: v.tenant.name });
      case 'POST /v1/tenant/cutoff':
        return json({ reason: 'cross-tenant', end_sessions: true });
      case 'PUT /v1/console/oidc':
        return json({ issuer: 'https://127.0.0.1:1', client_id: 'cross-tenant' });
      case 'POST /v1/ssf/streams':
        return json({ description: 'cross-tenant' });
      case 'PATCH /v1/ssf/streams':
      case 'PUT /v1/ssf/streams':
        return json({ stream_id: v.stream, description: 'cross-tenant' });
      case 'POST /v1/ssf/status':
        return json({ stream_id: v.stream, status: 'disabled' });
      case 'POST /v1/ssf/verify':
        return json({ stream_id: v.stream });
      case 'POST /v1/ssf/poll/{stream_id}':
        return json({ returnImmediately: true });
      case 'POST /oauth/token':
        // The attacker's key, signing as the victim's admin.
        return form({
          grant_type: 'client_credentials',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: await createClientAssertion(
            { ...a.identity, principal: v.adminId },
            { audience: `${PUBLIC_URL}/oauth/token`, now: b.clock.now() },
          ),
        });
      case 'POST /oauth/device_authorization': {
        const f = form({ tenant: v.tenant.id });
        const proof = await createDpopProof(await generateSessionKey(), {
          method: 'POST',
          url: `${PUBLIC_URL}/oauth/device_authorization`,
          now: b.clock.now(),
        });
        return { headers: { ...f.headers, dpop: proof }, payload: f.payload };
      }
      case 'POST /oauth/introspect':
      case 'POST /oauth/revoke':
        return form({ token: v.sessionToken });
      case 'POST /console/api/enrol/options':
        return json({ invitation: v.requester.id });
      case 'POST /console/api/enrol/verify':
        return json({ invitation: v.requester.id, credential: {} });
      case 'POST /console/api/sign-in/verify':
      case 'POST /console/api/verify/verify':
        return json({ credential: {} });
      case 'POST /console/api/device':
        return json({ user_code: 'BCDF-GHJK', allow: true });
      case 'POST /access/v1/evaluation':
        return json({
          subject: { type: 'user', id: v.requester.id },
          action: { name: 'request' },
          resource: { type: 'privilege', id: v.privilege.name },
        });
      case 'POST /access/v1/evaluations':
        return json({
          evaluations: [
            {
              subject: { type: 'user', id: v.requester.id },
              action: { name: 'request' },
              resource: { type: 'privilege', id: v.privilege.name },
            },
          ],
        });
      case 'POST /access/v1/requests':
        return json({
          subject: { type: 'user', id: v.requester.id },
          resource: { type: 'privilege', id: v.privilege.name },
          action: { name: 'request' },
          denial: {},
        });
      default:
        return name.startsWith('GET ') || name.startsWith('DELETE ') || name.startsWith('PUT /v1/groups')
          ? undefined
          : json({});
    }
  }

  it('enumerates every route the app serves, above the floor', () => {
    expect(routes.length).toBeGreaterThanOrEqual(ROUTE_FLOOR);
    const names = routes.map((r) => `${r.method} ${r.path}`);
    for (const r of [...PUBLIC_ROUTES, ...LAST_ROUTES]) expect(names, r).toContain(r);
    // The collected values: every tenant has its rows, and the values are its own.
    for (const s of sides.values()) {
      const mine = secrets.get(s.tenant.id)!;
      for (const v of [s.requester.id, s.group.name, s.privilege.id, s.session, s.pending, s.webhook.id])
        expect(mine.has(v), `${s.tag}: ${v}`).toBe(true);
    }
  });

  it('sees what the checks look for: the relationship from both sides, a tenant’s own data, a write', async () => {
    const alpha = side('alpha');
    const beta = side('beta');
    const zeta = side('zeta');
    const get = async (who: Side, url: string) => {
      const res = await b.app.inject({ url, headers: { authorization: `Bearer ${who.token}` } });
      return { status: res.statusCode, text: res.body };
    };
    // The provider reads its customer's relationship, with what it shares and nothing else.
    const seen = await get(zeta, `/v1/relationships/${relAlpha}`);
    expect(seen.status).toBe(200);
    for (const x of ['zeta-alpha-managed', 'alpha-firewall', 'alpha-customer'])
      expect(seen.text).toContain(x);
    for (const x of [alpha.requester.id, alpha.session, alpha.pending, alpha.group.name, 'alpha-request'])
      expect(seen.text).not.toContain(x);
    // The other customer does not learn it exists.
    expect((await get(beta, `/v1/relationships/${relAlpha}`)).status).toBe(404);
    expect((await get(beta, '/v1/relationships')).text).not.toContain(relAlpha);
    // A tenant's own list holds the values the leak check searches other answers for.
    const own = await get(alpha, '/v1/principals');
    for (const x of [alpha.requester.id, alpha.requester.name, seatName])
      expect(secrets.get(alpha.tenant.id)!.has(x) && own.text.includes(x), x).toBe(true);
    // A PEP's revocation feed names its own tenant's ended session (inside the event JWS).
    const feed = await b.app.inject({
      url: '/v1/events?after=0',
      headers: { authorization: `Bearer ${alpha.pep.token}` },
      payloadAsStream: true,
    });
    expect(feed.statusCode).toBe(200);
    const events = withDecodedTokens(await readAll(feed.stream(), true));
    expect(events).toContain(alpha.endedSession);
    expect(events).not.toContain(beta.endedSession);
    // A write shows in the writer's snapshot, and only there.
    const before = await snapshotAll(b.ctx.store, columns, [alpha.tenant.id, beta.tenant.id]);
    await alpha.admin.call('PATCH', `/v1/principals/${alpha.approver.name}`, { attributes: { desk: 'a1' } });
    await b.ctx.reevaluation.idle();
    const after = await snapshotAll(b.ctx.store, columns, [alpha.tenant.id, beta.tenant.id]);
    expect(after.get(alpha.tenant.id)!.tables.principals).not.toBe(
      before.get(alpha.tenant.id)!.tables.principals,
    );
    expect(after.get(alpha.tenant.id)!.tables.audit_heads).not.toBe(
      before.get(alpha.tenant.id)!.tables.audit_heads,
    );
    expect(after.get(beta.tenant.id)!.tables).toEqual(before.get(beta.tenant.id)!.tables);
  });

  it('answers every route, each tenant against each other, with a refusal or its own data, and changes no other tenant', async () => {
    const store = b.ctx.store;
    const logLevel = b.app.log.level;
    b.app.log.level = 'warn';
    const tenants = [...sides.values()].map((s) => s.tenant.id);
    const failures: string[] = [];
    const findings = new Map<string, string>();
    const coverage = new Map<string, number>();
    let sent = 0;
    const statuses: Record<string, number> = {};
    const perRoute = new Map<string, Set<number>>();
    const started = performance.now();
    await b.ctx.reevaluation.idle();
    let state = await snapshotAll(store, columns, tenants);
    let lastHeads = await auditHeads(store);
    const group: string[] = [];
    const tagOf = (t: string) => [...sides.values()].find((s) => s.tenant.id === t)!.tag;

    for (const route of routes) {
      const name = `${route.method} ${route.path}`;
      for (const [i, [at, vt]] of PAIRS.entries()) {
        const a = side(at);
        const v = side(vt);
        if (PAIRS[i - 1]?.[0] !== at) group.length = 0;
        const cases = await casesFor(route, a, v);
        coverage.set(`${name} ${at}→${vt}`, cases.length);
        for (const c of cases) {
          sent++;
          const res = await b.app.inject({
            method: c.method as 'GET',
            url: c.url,
            headers: c.headers,
            payloadAsStream: true,
            ...(c.payload === undefined ? {} : { payload: c.payload }),
          });
          const type = String(res.headers['content-type'] ?? '');
          const text = withDecodedTokens(await readAll(res.stream(), type.startsWith('text/event-stream')));
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
          const seen = perRoute.get(name) ?? new Set<number>();
          perRoute.set(name, seen.add(res.statusCode));
          const what = `${name} as ${at} → ${vt}${c.note ? ` (${c.note})` : ''}: ${c.method} ${c.url}`;
          const fail = (why: string) => {
            const key = `${name} ${at}→${vt}: ${why}`;
            if (!findings.has(key)) {
              findings.set(key, why);
              failures.push(
                `${what}\n    ${why}\n    answered ${res.statusCode} ${type} ${text.slice(0, 300)}`,
              );
            }
          };
          if (res.statusCode >= 500) fail(`server error ${res.statusCode}`);
          else if (c.expect === 'refuse') {
            const problem = refusalProblem(name, res.statusCode, type, text);
            if (problem) fail(`expected a refusal: ${problem}`);
          } else if (res.statusCode >= 400) {
            const problem = refusalProblem(name, res.statusCode, type, text);
            if (problem && !(c.expect === 'public' && res.statusCode === 404))
              fail(`bad refusal: ${problem}`);
          }
          if (
            route.path.startsWith('/oauth/introspect') &&
            res.statusCode < 300 &&
            /"active"\s*:\s*true/.test(text)
          )
            fail('introspection answered another tenant’s token as active');
          // Nothing of the victim's (nor of the third tenant's) may show, bar what the request
          // itself named and what a relationship shares with the caller on its own views.
          const said = `${c.url} ${c.payload ?? ''}`;
          const own = secrets.get(a.tenant.id)!;
          for (const other of sides.values()) {
            if (other === a) continue;
            const allowed = (a.tag === 'zeta' ? SHARED_WITH_PROVIDER : SHARED_WITH_CUSTOMER).test(name)
              ? shared(a, other)
              : new Set<string>();
            // The provider reads its operators' records in the customer's chain (their ids).
            const activity = name === 'GET /v1/customers/{name}/activity' && a.tag === 'zeta';
            // What the caller may see is cut out first, so that a name of its own that holds
            // another's as a part (a seat `op@provider`, a group `x-requesters`) is no finding.
            const visible = [...own, ...allowed, ...said.split(/[\s"&=?/]/)]
              .filter((x) => x.length >= 6)
              .sort((x, y) => y.length - x.length)
              .reduce((t, x) => t.replaceAll(x, ''), text);
            const leaked = [...secrets.get(other.tenant.id)!].filter(
              (x) =>
                x.length >= 6 &&
                !own.has(x) &&
                !allowed.has(x) &&
                !(activity && x.startsWith('aud_')) &&
                !said.includes(x) &&
                visible.includes(x),
            );
            if (leaked.length > 0) fail(`shows ${other.tag}'s ${leaked.slice(0, 5).join(', ')}`);
          }
          await b.ctx.reevaluation.idle();
          await (b.ctx.notifications as { idle?: () => Promise<void> }).idle?.();
          // After each request the other tenants' audit chain heads; after each attacker's
          // requests on a route, every row of theirs.
          const heads = await auditHeads(store);
          for (const t of tenants)
            if (t !== a.tenant.id && heads.get(t) !== lastHeads.get(t))
              fail(`moved ${tagOf(t)}'s audit chain head`);
          lastHeads = heads;
          group.push(what);
        }
        if (PAIRS[i + 1]?.[0] === at) continue;
        const after = await snapshotAll(store, columns, tenants);
        for (const t of tenants) {
          if (t === a.tenant.id) continue;
          const was = state.get(t)!.tables;
          const now = after.get(t)!.tables;
          const changed = [...new Set([...Object.keys(was), ...Object.keys(now)])].filter(
            (k) => was[k] !== now[k],
          );
          if (changed.length > 0)
            failures.push(
              `${name} as ${at}: changed ${tagOf(t)}'s ${changed.join(', ')}, within:\n    ${group.join('\n    ')}`,
            );
        }
        state = after;
      }
    }
    b.app.log.level = logLevel;
    const onlyInvalid = [...perRoute].filter(([, st]) => [...st].every((x) => x === 400)).map(([k]) => k);
    console.log(`answered 400 (invalid input) alone: ${onlyInvalid.join('; ')}`);
    const uncovered = [...coverage].filter(([, n]) => n === 0).map(([k]) => k);
    console.log(
      `tenant isolation [${store.dialect}]: ${routes.length} routes, ${sent} requests in ` +
        `${Math.round(performance.now() - started)} ms; statuses ${JSON.stringify(statuses)}; ` +
        `not aimed (no object of the victim's the attacker is no party to): ${uncovered.join('; ')}`,
    );
    // Every route is aimed at every other tenant, bar the provider at its own relationships.
    expect(
      uncovered.filter(
        (k) => !/^(PATCH \/v1\/relationships\/\{id\}|POST \/v1\/relationships\/\{id\}\/end) zeta→/.test(k),
      ),
    ).toEqual([]);
    expect(failures, failures.join('\n')).toEqual([]);
  }, 600_000);
}
