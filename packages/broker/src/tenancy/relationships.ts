import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { endUnderRelationship } from '../core/end-relationship.js';
import {
  lockTrustedRelationship,
  readRelationship,
  readRelationshipsOf,
  storeNewRelationship,
  storeRelationship,
} from '../core/relationship-trust.js';
import { resolveGroup, resolvePrivilege } from '../core/resolve.js';
import { newId } from '../domain/ids.js';
import {
  assertProposable,
  MAX_RELATIONSHIP_ITEMS,
  narrowRelationship,
  providerApproval,
  type Relationship,
  type RelationshipApproval,
  type RelationshipState,
  sideOf,
} from '../domain/relationship.js';
import { inTransaction, isUniqueViolation, type StoreHandle, type TxHandle } from '../store/database.js';
import { findGroup } from '../store/repositories/groups.js';
import { findPrivilege } from '../store/repositories/privileges.js';
import { listLiveSessionIdsUnder, listSeatsOutsideGroups } from '../store/repositories/relationships.js';
import { lockSessions, writeSessionExpiry } from '../store/repositories/sessions.js';
import { findTenantById } from '../store/repositories/tenants.js';
import { customerOf, requireProviderAdmin } from './customers.js';

export interface RelationshipProposal {
  customer: string;
  name: string;
  /** Group names in the provider tenant. */
  groups: string[];
  /** Privilege names in the customer tenant. */
  privileges: string[];
  approvals?: ApprovalsAsked | undefined;
  startsAt?: number | undefined;
  endsAt: number;
}

/** Approvals per side as asked over the API: the provider's approvers by group name. */
export interface ApprovalsAsked {
  /** Of the customer's own approvers (default 1 on a proposal). */
  customer?: number | undefined;
  /** Of the members of `providerApprovers` (default 0). */
  provider?: number | undefined;
  /** Group names in the provider tenant. */
  providerApprovers?: string[] | undefined;
}

/** The approval asked, with the provider's approver groups resolved in the provider tenant. */
async function approvalOf(
  h: StoreHandle,
  providerTenantId: string,
  asked: ApprovalsAsked,
  current: RelationshipApproval,
): Promise<RelationshipApproval> {
  assertSize(asked.providerApprovers ?? [], 'approver groups');
  const groupIds =
    asked.providerApprovers &&
    (await Promise.all(unique(asked.providerApprovers).map((g) => resolveGroup(h, providerTenantId, g)))).map(
      (g) => g.id,
    );
  const was = providerApproval(current);
  const provider = asked.provider ?? was.count;
  const providerApproverGroupIds = groupIds ?? was.groupIds;
  return provider === 0 && providerApproverGroupIds.length === 0
    ? { customer: asked.customer ?? current.customer }
    : { customer: asked.customer ?? current.customer, provider, providerApproverGroupIds };
}

const unique = (xs: string[]) => [...new Set(xs)];

function assertSize(xs: string[], what: string): void {
  if (xs.length > MAX_RELATIONSHIP_ITEMS)
    throw new TetherError(
      'invalid_relationship',
      `a relationship names at most ${MAX_RELATIONSHIP_ITEMS} ${what}`,
    );
}

/** Both chains record a relationship's every step, each from its own side. */
async function auditBoth(
  tx: TxHandle,
  r: Relationship,
  at: number,
  caller: Caller,
  action: string,
  details: Record<string, unknown> = {},
): Promise<void> {
  for (const tenantId of [r.providerTenantId, r.customerTenantId]) {
    const own = tenantId === caller.tenant.id;
    await recordAudit(tx, tenantId, at, {
      actor: own ? caller.principal.id : `${sideOf(r, caller.tenant.id)}:${caller.principal.id}`,
      action,
      target: r.id,
      outcome: 'success',
      details: { relationship: r.name, state: r.state, ...details },
    });
  }
}

/**
 * The provider's admin proposes a relationship to one of its customers. Nothing is usable
 * before the customer's admin accepts it.
 */
export async function proposeRelationship(
  ctx: BrokerContext,
  caller: Caller,
  input: RelationshipProposal,
): Promise<Relationship> {
  requireProviderAdmin(caller);
  const customer = await customerOf(ctx, caller.tenant.id, input.customer);
  assertSize(input.groups, 'groups');
  assertSize(input.privileges, 'privileges');
  const groups = await Promise.all(
    unique(input.groups).map((g) => resolveGroup(ctx.store, caller.tenant.id, g)),
  );
  const privileges = await Promise.all(
    unique(input.privileges).map((p) => resolvePrivilege(ctx.store, customer.id, p)),
  );
  const now = ctx.clock.now();
  const r: Relationship = {
    id: newId('relationship'),
    providerTenantId: caller.tenant.id,
    customerTenantId: customer.id,
    name: input.name,
    state: 'proposed',
    providerGroupIds: groups.map((g) => g.id),
    privilegeIds: privileges.map((p) => p.id),
    approval: await approvalOf(ctx.store, caller.tenant.id, input.approvals ?? {}, { customer: 1 }),
    startsAt: input.startsAt ?? null,
    endsAt: input.endsAt,
    proposedBy: caller.principal.id,
    proposedAt: now,
    acceptedBy: null,
    acceptedAt: null,
    endedBy: null,
    endedAt: null,
    endReason: null,
    updatedAt: now,
  };
  assertProposable(r, now);
  await inTransaction(ctx.store, async (tx) => {
    try {
      await storeNewRelationship(tx, ctx.kek, r);
    } catch (err) {
      if (isUniqueViolation(err))
        throw new TetherError(
          'already_exists',
          `a relationship named ${r.name} with ${customer.name} already exists`,
        );
      throw err;
    }
    await auditBoth(tx, r, now, caller, 'relationship.proposed', {
      groups: groups.map((g) => g.name),
      privileges: privileges.map((p) => p.name),
      approval: r.approval,
      ends_at: new Date(r.endsAt).toISOString(),
    });
  });
  return r;
}

/** Locks the relationship for a change by an admin of one of its sides. */
async function lockForChange(ctx: BrokerContext, tx: TxHandle, caller: Caller, id: string) {
  requireRole(caller, 'admin');
  const r = await lockTrustedRelationship(tx, ctx.kek, caller.tenant.id, id);
  if (!r) throw new TetherError('not_found', `no relationship ${JSON.stringify(id)} of this tenant`);
  return { r, side: sideOf(r, caller.tenant.id) as 'provider' | 'customer' };
}

/** The customer's admin accepts a proposed relationship: from now on, its operators may ask. */
export async function acceptRelationship(
  ctx: BrokerContext,
  caller: Caller,
  id: string,
): Promise<Relationship> {
  const now = ctx.clock.now();
  return inTransaction(ctx.store, async (tx) => {
    const { r, side } = await lockForChange(ctx, tx, caller, id);
    if (side !== 'customer') throw new TetherError('forbidden', 'only the customer accepts a relationship');
    if (r.state !== 'proposed' || now >= r.endsAt)
      throw new TetherError(
        'relationship_not_active',
        `relationship ${r.name} is ${r.state === 'proposed' ? 'past its end' : r.state}: only a proposal is accepted`,
      );
    const accepted: Relationship = {
      ...r,
      state: 'active',
      acceptedBy: caller.principal.id,
      acceptedAt: now,
      updatedAt: now,
    };
    await storeRelationship(tx, ctx.kek, accepted);
    await auditBoth(tx, accepted, now, caller, 'relationship.accepted');
    return accepted;
  });
}

/**
 * Either side's admin ends the relationship (a proposal is withdrawn or declined the same way):
 * every live session made under it ends and every pending request is cancelled, in the same
 * transaction, through the revocation log.
 */
export async function endRelationship(
  ctx: BrokerContext,
  caller: Caller,
  id: string,
): Promise<{ relationship: Relationship; sessionsEnded: number; requestsCancelled: number }> {
  const now = ctx.clock.now();
  return inTransaction(ctx.store, async (tx) => {
    const { r, side } = await lockForChange(ctx, tx, caller, id);
    if (r.state === 'ended')
      throw new TetherError('relationship_not_active', `relationship ${r.name} has already ended`);
    const ended: Relationship = {
      ...r,
      state: 'ended',
      endedBy: caller.principal.id,
      endedAt: now,
      endReason: side === 'customer' ? 'ended_by_customer' : 'ended_by_provider',
      updatedAt: now,
    };
    await storeRelationship(tx, ctx.kek, ended);
    const by = side === 'customer' ? caller.principal.id : `provider:${caller.principal.id}`;
    const done = await endUnderRelationship(ctx, tx, ended, now, by, ended.endReason as string);
    await auditBoth(tx, ended, now, caller, 'relationship.ended', {
      reason: ended.endReason,
      sessions_ended: done.sessions.length,
      requests_cancelled: done.requests.length,
    });
    return {
      relationship: ended,
      sessionsEnded: done.sessions.length,
      requestsCancelled: done.requests.length,
    };
  });
}

export interface RelationshipChanges {
  groups?: string[] | undefined;
  privileges?: string[] | undefined;
  endsAt?: number | undefined;
  approvals?: ApprovalsAsked | undefined;
}

/**
 * Either side's admin narrows the relationship: fewer groups or privileges, an earlier end,
 * more approvals. What it no longer covers ends at once (sessions of a removed privilege or of
 * an operator no longer in a named group; their pending requests are cancelled); a session that
 * would outlive the new end now ends at it.
 */
export async function narrowRelationshipBy(
  ctx: BrokerContext,
  caller: Caller,
  id: string,
  changes: RelationshipChanges,
): Promise<{ relationship: Relationship; sessionsEnded: number; requestsCancelled: number }> {
  const now = ctx.clock.now();
  return inTransaction(ctx.store, async (tx) => {
    const { r, side } = await lockForChange(ctx, tx, caller, id);
    if (r.state === 'ended')
      throw new TetherError('relationship_not_active', `relationship ${r.name} has ended`);
    const groupIds =
      changes.groups &&
      (await Promise.all(unique(changes.groups).map((g) => resolveGroup(tx, r.providerTenantId, g)))).map(
        (g) => g.id,
      );
    const privilegeIds =
      changes.privileges &&
      (
        await Promise.all(unique(changes.privileges).map((p) => resolvePrivilege(tx, r.customerTenantId, p)))
      ).map((p) => p.id);
    const narrowed = narrowRelationship(
      r,
      {
        providerGroupIds: groupIds,
        privilegeIds,
        endsAt: changes.endsAt,
        approval:
          changes.approvals === undefined
            ? undefined
            : await approvalOf(tx, r.providerTenantId, changes.approvals, r.approval),
      },
      now,
    );
    await storeRelationship(tx, ctx.kek, narrowed);
    const seatIds = await listSeatsOutsideGroups(
      tx,
      r.customerTenantId,
      r.providerTenantId,
      narrowed.providerGroupIds,
    );
    const by = side === 'customer' ? caller.principal.id : `provider:${caller.principal.id}`;
    const done = await endUnderRelationship(ctx, tx, narrowed, now, by, 'narrowed', {
      privilegeIds: narrowed.privilegeIds,
      seatIds,
    });
    const capped: string[] = [];
    if (narrowed.endsAt < r.endsAt) {
      for (const session of await lockSessions(tx, await listLiveSessionIdsUnder(tx, r.id))) {
        if (session.state !== 'active' || session.hardExpiresAt <= narrowed.endsAt) continue;
        if (await writeSessionExpiry(tx, session.id, narrowed.endsAt)) capped.push(session.id);
      }
    }
    await auditBoth(tx, narrowed, now, caller, 'relationship.narrowed', {
      sessions_ended: done.sessions.length,
      requests_cancelled: done.requests.length,
      sessions_capped: capped,
      ends_at: new Date(narrowed.endsAt).toISOString(),
    });
    return {
      relationship: narrowed,
      sessionsEnded: done.sessions.length,
      requestsCancelled: done.requests.length,
    };
  });
}

/** A relationship of the caller's tenant (admins and auditors of either side). */
export async function getRelationship(ctx: BrokerContext, caller: Caller, id: string): Promise<Relationship> {
  requireRole(caller, 'admin', 'auditor');
  const r = await readRelationship(ctx.store, ctx.kek, caller.tenant.id, id);
  if (!r) throw new TetherError('not_found', `no relationship ${JSON.stringify(id)} of this tenant`);
  return r;
}

/** The caller tenant's relationships, on whichever side (admins and auditors). */
export async function listRelationships(
  ctx: BrokerContext,
  caller: Caller,
  filter: { state?: RelationshipState } = {},
): Promise<Relationship[]> {
  requireRole(caller, 'admin', 'auditor');
  return readRelationshipsOf(ctx.store, ctx.kek, caller.tenant.id, filter);
}

/** What a relationship's view names instead of ids: both tenants, the groups, the privileges. */
export interface RelationshipNames {
  provider: string;
  customer: string;
  groups: string[];
  privileges: string[];
  /** The provider's approver groups. */
  approvers: string[];
}

export async function namesOf(ctx: BrokerContext, r: Relationship): Promise<RelationshipNames> {
  const [provider, customer] = await Promise.all([
    findTenantById(ctx.store, r.providerTenantId),
    findTenantById(ctx.store, r.customerTenantId),
  ]);
  const groupName = async (id: string) => (await findGroup(ctx.store, r.providerTenantId, id))?.name ?? id;
  const groups = await Promise.all(
    r.providerGroupIds.map((id) => findGroup(ctx.store, r.providerTenantId, id)),
  );
  const approvers = await Promise.all(providerApproval(r.approval).groupIds.map(groupName));
  const privileges = await Promise.all(
    r.privilegeIds.map((id) => findPrivilege(ctx.store, r.customerTenantId, id)),
  );
  return {
    provider: provider?.name ?? r.providerTenantId,
    customer: customer?.name ?? r.customerTenantId,
    groups: groups.map((g, i) => g?.name ?? (r.providerGroupIds[i] as string)),
    privileges: privileges.map((p, i) => p?.name ?? (r.privilegeIds[i] as string)),
    approvers,
  };
}
