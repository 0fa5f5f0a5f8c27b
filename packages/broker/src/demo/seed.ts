import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { createConnector } from '../connectors/connectors.js';
import type { BrokerContext, Caller } from '../core/context.js';
import type { Principal, Tenant } from '../domain/principal.js';
import { bootstrapTenant } from '../records/bootstrap.js';
import { createGroup, setGroupMembership } from '../records/groups.js';
import { getPepAudiences, setPepAudiences } from '../records/pep-audiences.js';
import { replacePolicySet } from '../records/policies.js';
import { addPrincipalKey, createPrincipal } from '../records/principals.js';
import { createPrivilege } from '../records/privileges.js';
import { findConnectorByName } from '../store/repositories/connectors.js';
import { findPrincipalByName, listPrincipalKeys } from '../store/repositories/principals.js';
import { findPrivilegeByName } from '../store/repositories/privileges.js';
import { findTenantByName } from '../store/repositories/tenants.js';
import { type DemoIdentity, type MspDemo, seedMspDemo } from './msp.js';
import { DEMO_POLICIES } from './policies.js';

export const DEMO_TENANT = 'demo-msp';

/**
 * The demo's cast: an admin, an operator, an approver, a deployment pipeline, and the
 * enforcement point that `tether gateway` runs as in front of the firewall stand-in.
 */
export const DEMO_PRINCIPALS = [
  { name: 'admin', kind: 'human', roles: ['admin'], attributes: {}, role: 'tenant administrator' },
  { name: 'olivia', kind: 'human', roles: [], attributes: { team: 'netops' }, role: 'operator' },
  { name: 'avery', kind: 'human', roles: ['auditor'], attributes: { team: 'security' }, role: 'approver' },
  {
    name: 'deploy-pipeline',
    kind: 'pipeline',
    roles: [],
    attributes: { repository: 'acme/web' },
    role: 'deployment pipeline',
  },
  {
    name: 'edge-gateway',
    kind: 'service',
    roles: ['pep'],
    attributes: {},
    role: 'enforcement point: tether gateway --config examples/gateway.yaml',
    // The audience of examples/gateway.yaml (its public_url), which firewall-admin grants:
    // the gateway may record decisions for it only.
    audiences: ['http://127.0.0.1:8701'],
  },
] as const;

export interface DemoSeed {
  tenant: Tenant;
  /** Private JWKs of the demo tenant's principals, to be written to their identity files. */
  identities: DemoIdentity[];
  /** The MSP demo beside it: a provider, two customers, one accepted relationship. */
  msp: MspDemo;
  created: boolean;
}

async function freshKey(): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'EdDSA' }, publicJwk };
}

/**
 * Creates the demo MSP tenant once; on later starts reuses it. `knownKeys` holds the private
 * JWKs already on disk: a principal whose key is still registered keeps it, any other gets a
 * new one registered, so the identity files always work.
 */
export async function seedDemo(
  ctx: BrokerContext,
  knownKeys: Record<string, JWK | undefined>,
  options: { databaseUrl?: string | undefined } = {},
): Promise<DemoSeed> {
  const existing = await findTenantByName(ctx.store, DEMO_TENANT);
  const { tenant, admin, adminKey, created } = existing
    ? {
        tenant: existing,
        admin: await mustFind(ctx, existing.id, 'admin'),
        adminKey: undefined,
        created: false,
      }
    : await createDemoTenant(ctx);
  const caller: Caller = { principal: admin, tenant };
  const identities: DemoSeed['identities'] = [];
  for (const cast of DEMO_PRINCIPALS) {
    const principal = await findOrCreate(ctx, caller, cast);
    const registered = new Set((await listPrincipalKeys(ctx.store, principal.id)).map((k) => k.kid));
    let key = cast.name === 'admin' && adminKey ? adminKey : knownKeys[cast.name];
    if (!key?.kid || !registered.has(key.kid)) {
      const fresh = await freshKey();
      await addPrincipalKey(ctx, caller, principal.id, fresh.publicJwk as Record<string, unknown>);
      key = fresh.privateJwk;
    }
    // A demo seeded before PEPs had audiences gets them on its next start.
    if ('audiences' in cast && (await getPepAudiences(ctx, caller, principal.id)).audiences.length === 0)
      await setPepAudiences(ctx, caller, principal.id, cast.audiences);
    identities.push({ name: cast.name, role: cast.role, tenant, principal, key });
  }
  if (options.databaseUrl) await seedDemoDatabase(ctx, caller, options.databaseUrl);
  const msp = await seedMspDemo(ctx, knownKeys, freshKey);
  return { tenant, identities, msp, created };
}

/**
 * With a demo database (`TETHER_DEMO_DATABASE_URL`): a PostgreSQL connector `demo-db` on it and
 * a privilege `db-maintenance` whose sessions each get a login role there, dropped (and its
 * connections cut) when the session ends. Created once; a later start leaves them as they are.
 */
async function seedDemoDatabase(ctx: BrokerContext, caller: Caller, url: string): Promise<void> {
  if (!(await findConnectorByName(ctx.store, caller.tenant.id, 'demo-db')))
    await createConnector(ctx, caller, { name: 'demo-db', kind: 'postgres', url, grantRoles: [] });
  if (await findPrivilegeByName(ctx.store, caller.tenant.id, 'db-maintenance')) return;
  await createPrivilege(ctx, caller, {
    name: 'db-maintenance',
    description: 'Maintain the demo database: a login role of its own per session',
    actions: ['db:maintain'],
    resources: ['db/demo'],
    audiences: ['https://db.demo.example'],
    maxDurationSeconds: 3600,
    tokenTtlSeconds: 300,
    approval: { approvals: 1, approvers: { groups: ['approvers'] } },
    ticket: { required: true, pattern: 'CHG-[0-9]+' },
    connectors: ['demo-db'],
  });
}

/** A cast member added to the demo after a tenant was seeded is created on the next start. */
async function findOrCreate(
  ctx: BrokerContext,
  caller: Caller,
  cast: (typeof DEMO_PRINCIPALS)[number],
): Promise<Principal> {
  const found = await findPrincipalByName(ctx.store, caller.tenant.id, cast.name);
  if (found) return found;
  return createPrincipal(ctx, caller, {
    name: cast.name,
    kind: cast.kind,
    roles: [...cast.roles],
    attributes: { ...cast.attributes },
  });
}

async function mustFind(ctx: BrokerContext, tenantId: string, name: string): Promise<Principal> {
  const found = await findPrincipalByName(ctx.store, tenantId, name);
  if (!found)
    throw new Error(
      `the demo tenant is missing principal ${name}; remove the data directory to re-create it`,
    );
  return found;
}

async function createDemoTenant(ctx: BrokerContext) {
  const boot = await bootstrapTenant(ctx.store, ctx.clock, {
    tenantName: DEMO_TENANT,
    displayName: 'Demo MSP',
    timeZone: 'UTC',
    adminName: 'admin',
  });
  const caller: Caller = { principal: boot.admin, tenant: boot.tenant };
  for (const cast of DEMO_PRINCIPALS) {
    if (cast.name === 'admin') continue;
    await createPrincipal(ctx, caller, {
      name: cast.name,
      kind: cast.kind,
      roles: [...cast.roles],
      attributes: { ...cast.attributes },
    });
  }
  await createGroup(ctx, caller, { name: 'operators', description: 'network operators' });
  await createGroup(ctx, caller, { name: 'approvers', description: 'may approve operator access' });
  await setGroupMembership(ctx, caller, 'operators', 'olivia', true);
  await setGroupMembership(ctx, caller, 'approvers', 'avery', true);
  await createPrivilege(ctx, caller, {
    name: 'firewall-admin',
    description: 'Change rules on the edge firewalls',
    actions: ['firewall:rules.read', 'firewall:rules.write'],
    resources: ['firewall/edge-*'],
    audiences: ['http://127.0.0.1:8701'],
    maxDurationSeconds: 2 * 3600,
    tokenTtlSeconds: 300,
    approval: { approvals: 1, approvers: { groups: ['approvers'] } },
    ticket: { required: true, pattern: '(NET|CHG)-[0-9]+' },
    attributes: { risk: 'high' },
  });
  await createPrivilege(ctx, caller, {
    name: 'deploy',
    description: 'Release the web application',
    actions: ['deploy:release'],
    resources: ['app/web'],
    audiences: ['http://127.0.0.1:8702'],
    maxDurationSeconds: 3600,
    tokenTtlSeconds: 300,
    approval: { approvals: 1, approvers: { groups: ['approvers'] } },
    ticket: { required: true, pattern: 'CHG-[0-9]+' },
    attributes: { risk: 'medium' },
  });
  await createPrivilege(ctx, caller, {
    name: 'support-shell',
    description: 'Read logs and restart services on the support host, in a recorded shell session',
    actions: ['host:logs.read', 'host:service.restart'],
    resources: ['host/support-*'],
    audiences: ['http://127.0.0.1:8703'],
    maxDurationSeconds: 3600,
    tokenTtlSeconds: 300,
    approval: { approvals: 1, approvers: { groups: ['approvers'] } },
    ticket: { required: true, pattern: '(INC|CHG)-[0-9]+' },
    attributes: { risk: 'high' },
    // Only while recorded: `tether exec` runs the shell on a PTY and streams it to the broker.
    recording: 'output',
  });
  await replacePolicySet(ctx, caller, DEMO_POLICIES);
  return { tenant: boot.tenant, admin: boot.admin, adminKey: boot.adminPrivateJwk, created: true };
}
