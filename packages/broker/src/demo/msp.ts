import type { JWK } from 'jose';
import type { BrokerContext, Caller } from '../core/context.js';
import type { Principal, Tenant } from '../domain/principal.js';
import { bootstrapTenant } from '../records/bootstrap.js';
import { createGroup, setGroupMembership } from '../records/groups.js';
import { replacePolicySet } from '../records/policies.js';
import { addPrincipalKey, createPrincipal } from '../records/principals.js';
import { createPrivilege } from '../records/privileges.js';
import { findPrincipalByName, listPrincipalKeys } from '../store/repositories/principals.js';
import { findTenantByName } from '../store/repositories/tenants.js';
import { addCustomer } from '../tenancy/customers.js';
import { acceptRelationship, listRelationships, proposeRelationship } from '../tenancy/relationships.js';

/** The demo's provider (an MSP) tenant, beside the standalone demo tenant. */
export const DEMO_PROVIDER = 'msp';

/** The provider's operator: in its `operators` group, which the relationship with acme-corp names. */
export const DEMO_OPERATOR = 'morgan';

/** The demo provider's customers: each with its own admin, approver and one privilege. */
export const DEMO_CUSTOMERS = [
  {
    name: 'acme-corp',
    displayName: 'Acme Corp',
    admin: 'acme-admin',
    approver: 'acme-approver',
    privilege: {
      name: 'server-maintenance',
      description: "Patch and restart Acme's application servers",
      actions: ['host:patch', 'host:service.restart'],
      resources: ['host/app-*'],
      audiences: ['https://servers.acme-corp.example'],
    },
  },
  {
    name: 'globex',
    displayName: 'Globex',
    admin: 'globex-admin',
    approver: 'globex-approver',
    privilege: {
      name: 'backup-restore',
      description: "Restore Globex's backups",
      actions: ['backup:restore'],
      resources: ['backup/*'],
      audiences: ['https://backups.globex.example'],
    },
  },
] as const;

/** The one accepted relationship: the provider's operators may ask for acme-corp's server maintenance. */
export const DEMO_RELATIONSHIP = {
  name: 'managed-servers',
  customer: 'acme-corp',
  groups: ['operators'],
  privileges: ['server-maintenance'],
  days: 365,
} as const;

/** One demo identity: which tenant it is in, who it is, and its private key for the identity file. */
export interface DemoIdentity {
  name: string;
  role: string;
  tenant: Tenant;
  principal: Principal;
  key: JWK;
}

/** The MSP part of the demo: the provider, its customers, its relationship and everyone's identities. */
export interface MspDemo {
  provider: Tenant;
  customers: Tenant[];
  /** The relationship's name and state, as seeded (or as found on a later start). */
  relationship: { id: string; name: string; customer: string; state: string } | undefined;
  identities: DemoIdentity[];
}

type FreshKey = () => Promise<{ privateJwk: JWK; publicJwk: JWK }>;

/**
 * Seeds the MSP demo once (the provider `msp`, its customers `acme-corp` and `globex`, and the
 * relationship acme-corp accepted); a later start reuses it and only makes sure every identity's
 * key is still registered, as the standalone demo does.
 */
export async function seedMspDemo(
  ctx: BrokerContext,
  knownKeys: Record<string, JWK | undefined>,
  freshKey: FreshKey,
): Promise<MspDemo> {
  const existing = await findTenantByName(ctx.store, DEMO_PROVIDER);
  const made = existing ? undefined : await createMspDemo(ctx, freshKey);
  const provider = existing ?? (made as CreatedMsp).provider;
  const providerAdmin = await mustFind(ctx, provider, 'msp-admin');
  const providerCaller: Caller = { principal: providerAdmin, tenant: provider };
  const identities: DemoIdentity[] = [];
  const keep = async (caller: Caller, name: string, role: string) => {
    const principal = await mustFind(ctx, caller.tenant, name);
    identities.push({
      name,
      role,
      tenant: caller.tenant,
      principal,
      key: await registeredKey(ctx, caller, principal, knownKeys[name] ?? made?.keys[name], freshKey),
    });
  };
  await keep(providerCaller, 'msp-admin', `provider admin (${DEMO_PROVIDER})`);
  await keep(providerCaller, DEMO_OPERATOR, `provider operator (${DEMO_PROVIDER}, group operators)`);
  const customers: Tenant[] = [];
  for (const c of DEMO_CUSTOMERS) {
    const tenant = await findTenantByName(ctx.store, c.name);
    if (!tenant) throw missing(c.name);
    customers.push(tenant);
    const admin: Caller = { principal: await mustFind(ctx, tenant, c.admin), tenant };
    await keep(admin, c.admin, `customer admin (${c.name})`);
    await keep(admin, c.approver, `customer approver (${c.name})`);
  }
  const [relationship] = await listRelationships(ctx, providerCaller, {});
  return {
    provider,
    customers,
    relationship: relationship && {
      id: relationship.id,
      name: relationship.name,
      customer: DEMO_RELATIONSHIP.customer,
      state: relationship.state,
    },
    identities,
  };
}

interface CreatedMsp {
  provider: Tenant;
  /** Private JWKs of the principals made with a key, by name. */
  keys: Record<string, JWK>;
}

async function createMspDemo(ctx: BrokerContext, freshKey: FreshKey): Promise<CreatedMsp> {
  const boot = await bootstrapTenant(ctx.store, ctx.clock, {
    tenantName: DEMO_PROVIDER,
    displayName: 'Demo managed service provider',
    timeZone: 'UTC',
    adminName: 'msp-admin',
    kind: 'provider',
  });
  const keys: Record<string, JWK> = { 'msp-admin': boot.adminPrivateJwk };
  const provider: Caller = { principal: boot.admin, tenant: boot.tenant };
  const operatorKey = await freshKey();
  await createPrincipal(ctx, provider, {
    name: DEMO_OPERATOR,
    kind: 'human',
    attributes: { team: 'noc' },
    keys: [operatorKey.publicJwk as Record<string, unknown>],
  });
  keys[DEMO_OPERATOR] = operatorKey.privateJwk;
  await createGroup(ctx, provider, { name: 'operators', description: "the provider's operators" });
  await setGroupMembership(ctx, provider, 'operators', DEMO_OPERATOR, true);
  for (const c of DEMO_CUSTOMERS) {
    const adminKey = await freshKey();
    const made = await addCustomer(ctx, provider, {
      name: c.name,
      displayName: c.displayName,
      timeZone: 'UTC',
      admin: { name: c.admin, publicJwk: adminKey.publicJwk as Record<string, unknown> },
    });
    keys[c.admin] = adminKey.privateJwk;
    keys[c.approver] = await furnishCustomer(
      ctx,
      { principal: made.admin, tenant: made.tenant },
      c,
      freshKey,
    );
  }
  const now = ctx.clock.now();
  const proposed = await proposeRelationship(ctx, provider, {
    customer: DEMO_RELATIONSHIP.customer,
    name: DEMO_RELATIONSHIP.name,
    groups: [...DEMO_RELATIONSHIP.groups],
    privileges: [...DEMO_RELATIONSHIP.privileges],
    endsAt: now + DEMO_RELATIONSHIP.days * 24 * 3600_000,
  });
  const acme = await findTenantByName(ctx.store, DEMO_RELATIONSHIP.customer);
  if (!acme) throw missing(DEMO_RELATIONSHIP.customer);
  const acmeAdmin = await mustFind(ctx, acme, DEMO_CUSTOMERS[0].admin);
  await acceptRelationship(ctx, { principal: acmeAdmin, tenant: acme }, proposed.id);
  return { provider: boot.tenant, keys };
}

/** A customer's own records, made by its own admin: an approver, its group, its privilege and policy. */
async function furnishCustomer(
  ctx: BrokerContext,
  admin: Caller,
  c: (typeof DEMO_CUSTOMERS)[number],
  freshKey: FreshKey,
): Promise<JWK> {
  const approverKey = await freshKey();
  await createPrincipal(ctx, admin, {
    name: c.approver,
    kind: 'human',
    keys: [approverKey.publicJwk as Record<string, unknown>],
  });
  await createGroup(ctx, admin, { name: 'approvers', description: `may approve access to ${c.displayName}` });
  await setGroupMembership(ctx, admin, 'approvers', c.approver, true);
  await createPrivilege(ctx, admin, {
    ...c.privilege,
    actions: [...c.privilege.actions],
    resources: [...c.privilege.resources],
    audiences: [...c.privilege.audiences],
    maxDurationSeconds: 4 * 3600,
    tokenTtlSeconds: 300,
    approval: { approvals: 1, approvers: { groups: ['approvers'] } },
    ticket: { required: false },
  });
  // The relationship is the customer's permit for the provider's operators to ask; its
  // approvers still decide each request.
  await replacePolicySet(ctx, admin, {
    'approvers-approve': `@id("approvers-approve")
permit(principal in Tether::Group::"approvers", action == Tether::Action::"approve", resource)
when { principal != context.requester };`,
  });
  return approverKey.privateJwk;
}

/** The key on disk when it is still registered; else a fresh one, registered now. */
async function registeredKey(
  ctx: BrokerContext,
  admin: Caller,
  principal: Principal,
  known: JWK | undefined,
  freshKey: FreshKey,
): Promise<JWK> {
  const registered = new Set((await listPrincipalKeys(ctx.store, principal.id)).map((k) => k.kid));
  if (known?.kid && registered.has(known.kid)) return known;
  const fresh = await freshKey();
  await addPrincipalKey(ctx, admin, principal.id, fresh.publicJwk as Record<string, unknown>);
  return fresh.privateJwk;
}

async function mustFind(ctx: BrokerContext, tenant: Tenant, name: string): Promise<Principal> {
  const found = await findPrincipalByName(ctx.store, tenant.id, name);
  if (!found) throw missing(`${tenant.name}/${name}`);
  return found;
}

function missing(what: string): Error {
  return new Error(`the MSP demo is missing ${what}; remove the data directory to re-create it`);
}
