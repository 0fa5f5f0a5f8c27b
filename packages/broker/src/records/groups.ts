import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { resolveGroup, resolvePrincipal } from '../core/resolve.js';
import { newId } from '../domain/ids.js';
import type { Group } from '../domain/principal.js';
import { enqueueReevaluation } from '../evaluation/jobs.js';
import { reevaluateSeatsOf } from '../evaluation/seat-reevaluation.js';
import { inTransaction, isUniqueViolation } from '../store/database.js';
import {
  addGroupMember,
  deleteGroup,
  insertGroup,
  listGroupMembers,
  listGroups,
  removeGroupMember,
} from '../store/repositories/groups.js';

export async function createGroup(
  ctx: BrokerContext,
  caller: Caller,
  input: { name: string; description?: string | undefined },
): Promise<Group> {
  requireRole(caller, 'admin');
  const group: Group = {
    id: newId('group'),
    tenantId: caller.tenant.id,
    name: input.name,
    description: input.description ?? '',
    createdAt: ctx.clock.now(),
  };
  return inTransaction(ctx.store, async (tx) => {
    try {
      await insertGroup(tx, group);
    } catch (err) {
      if (isUniqueViolation(err))
        throw new TetherError('already_exists', `a group named ${input.name} already exists`);
      throw err;
    }
    await recordAudit(tx, group.tenantId, group.createdAt, {
      actor: caller.principal.id,
      action: 'group.created',
      target: group.id,
      outcome: 'success',
      details: { name: group.name },
    });
    return group;
  });
}

export async function getGroup(
  ctx: BrokerContext,
  caller: Caller,
  ref: string,
): Promise<{ group: Group; members: string[] }> {
  const group = await resolveGroup(ctx.store, caller.tenant.id, ref);
  return { group, members: await listGroupMembers(ctx.store, caller.tenant.id, group.id) };
}

export async function findGroups(ctx: BrokerContext, caller: Caller): Promise<Group[]> {
  return listGroups(ctx.store, caller.tenant.id);
}

export async function removeGroup(ctx: BrokerContext, caller: Caller, ref: string): Promise<void> {
  requireRole(caller, 'admin');
  await inTransaction(ctx.store, async (tx) => {
    const group = await resolveGroup(tx, caller.tenant.id, ref);
    const members = await listGroupMembers(tx, caller.tenant.id, group.id);
    await deleteGroup(tx, caller.tenant.id, group.id);
    // Its members' live sessions are judged again without it (and their seats', elsewhere).
    for (const principalId of members) {
      await reevaluateSeatsOf(ctx, tx, caller.tenant.id, principalId, {
        kind: 'group_changed',
        group: group.id,
        principal: principalId,
        by: caller.principal.id,
      });
      await enqueueReevaluation(
        ctx,
        tx,
        caller.tenant.id,
        { principalId },
        {
          kind: 'group_changed',
          group: group.id,
          principal: principalId,
          by: caller.principal.id,
        },
      );
    }
    await recordAudit(tx, caller.tenant.id, ctx.clock.now(), {
      actor: caller.principal.id,
      action: 'group.deleted',
      target: group.id,
      outcome: 'success',
      details: { name: group.name },
    });
  });
}

/** Adds or removes a member. Idempotent: answers whether anything changed. */
export async function setGroupMembership(
  ctx: BrokerContext,
  caller: Caller,
  groupRef: string,
  principalRef: string,
  member: boolean,
): Promise<{ changed: boolean }> {
  requireRole(caller, 'admin');
  return inTransaction(ctx.store, async (tx) => {
    const group = await resolveGroup(tx, caller.tenant.id, groupRef);
    const principal = await resolvePrincipal(tx, caller.tenant.id, principalRef);
    // A seat's standing comes from its relationship alone, never from this tenant's groups.
    if (member && principal.home)
      throw new TetherError(
        'seat_restricted',
        `${principal.name} is a provider operator's seat: relationships, not groups, say what it may do`,
      );
    const changed = member
      ? await addGroupMember(tx, caller.tenant.id, group.id, principal.id)
      : await removeGroupMember(tx, caller.tenant.id, group.id, principal.id);
    if (changed) {
      // A policy may permit or forbid by membership either way: the member's live sessions are
      // judged again, and its seats' in customer tenants (a relationship names home groups).
      await reevaluateSeatsOf(ctx, tx, caller.tenant.id, principal.id, {
        kind: 'group_changed',
        group: group.id,
        principal: principal.id,
        by: caller.principal.id,
      });
      await enqueueReevaluation(
        ctx,
        tx,
        caller.tenant.id,
        { principalId: principal.id },
        {
          kind: 'group_changed',
          group: group.id,
          principal: principal.id,
          by: caller.principal.id,
        },
      );
      await recordAudit(tx, caller.tenant.id, ctx.clock.now(), {
        actor: caller.principal.id,
        action: member ? 'group.member.added' : 'group.member.removed',
        target: group.id,
        outcome: 'success',
        principalId: principal.id,
        details: { group: group.name, principal: principal.name },
      });
    }
    return { changed };
  });
}
