import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { endLiveSessionsOf } from '../core/end-sessions-of.js';
import { resolveGroup, resolvePrincipal, resolvePrivilege } from '../core/resolve.js';
import { newId } from '../domain/ids.js';
import {
  type ApprovalRule,
  assertPrivilegeIsCoherent,
  PRIVILEGE_DEFAULTS,
  type Privilege,
  type TicketRule,
} from '../domain/privilege.js';
import type { RecordingMode } from '../domain/recording.js';
import { enqueueReevaluation } from '../evaluation/jobs.js';
import { inTransaction, isUniqueViolation, type TxHandle } from '../store/database.js';
import { findConnectorByName } from '../store/repositories/connectors.js';
import {
  deletePrivilege,
  insertPrivilege,
  listPrivileges,
  lockPrivilege,
  updatePrivilege,
} from '../store/repositories/privileges.js';
import { countRequestsForPrivilege } from '../store/repositories/requests.js';

export interface PrivilegeInput {
  name: string;
  description?: string | undefined;
  actions: string[];
  resources: string[];
  audiences: string[];
  maxDurationSeconds?: number | undefined;
  tokenTtlSeconds?: number | undefined;
  /** Null: no idle timeout. */
  idleTimeoutSeconds?: number | null | undefined;
  approval?:
    | {
        approvals?: number | undefined;
        approvers?: { principals?: string[]; groups?: string[] } | undefined;
        fresh_verification?: number | null | undefined;
      }
    | undefined;
  ticket?: TicketRule | undefined;
  attributes?: Record<string, string> | undefined;
  /** Names of the tenant's connectors (each must exist). */
  connectors?: string[] | undefined;
  /** Whether its sessions must run recorded, and what. */
  recording?: RecordingMode | undefined;
}

/** Connector names must name the tenant's connectors; kept as given, without repeats. */
async function resolveConnectorNames(tx: TxHandle, tenantId: string, names: string[]): Promise<string[]> {
  const unique = [...new Set(names)];
  for (const name of unique)
    if (!(await findConnectorByName(tx, tenantId, name)))
      throw new TetherError('not_found', `no connector named ${JSON.stringify(name)} in this tenant`);
  return unique;
}

/** Approver references (names or ids) become ids, and must exist in the tenant. */
async function resolveApprovalRule(
  tx: TxHandle,
  tenantId: string,
  input: PrivilegeInput['approval'],
  fallback: ApprovalRule,
): Promise<ApprovalRule> {
  if (!input) return fallback;
  const principals = await Promise.all(
    (input.approvers?.principals ?? []).map(async (r) => (await resolvePrincipal(tx, tenantId, r)).id),
  );
  const groups = await Promise.all(
    (input.approvers?.groups ?? []).map(async (r) => (await resolveGroup(tx, tenantId, r)).id),
  );
  const fresh =
    input.fresh_verification === undefined
      ? fallback.freshVerificationSeconds
      : (input.fresh_verification ?? undefined);
  return {
    approvals: input.approvals ?? fallback.approvals,
    approvers: input.approvers
      ? { principals: [...new Set(principals)], groups: [...new Set(groups)] }
      : fallback.approvers,
    ...(fresh === undefined ? {} : { freshVerificationSeconds: fresh }),
  };
}

function assertAudiencesAreNotTheBroker(ctx: BrokerContext, audiences: string[]): void {
  // A session token must never be accepted as a broker-API token, so the audiences differ.
  if (audiences.some((a) => a.replace(/\/+$/, '') === ctx.config.publicUrl)) {
    throw new TetherError('invalid_request', "a privilege's audience may not be the broker itself");
  }
}

export async function createPrivilege(
  ctx: BrokerContext,
  caller: Caller,
  input: PrivilegeInput,
): Promise<Privilege> {
  requireRole(caller, 'admin');
  assertAudiencesAreNotTheBroker(ctx, input.audiences);
  return inTransaction(ctx.store, async (tx) => {
    const now = ctx.clock.now();
    const privilege: Privilege = {
      id: newId('privilege'),
      tenantId: caller.tenant.id,
      name: input.name,
      description: input.description ?? '',
      actions: [...new Set(input.actions)],
      resources: [...new Set(input.resources)],
      audiences: [...new Set(input.audiences)],
      maxDurationSeconds: input.maxDurationSeconds ?? PRIVILEGE_DEFAULTS.maxDurationSeconds,
      tokenTtlSeconds: input.tokenTtlSeconds ?? PRIVILEGE_DEFAULTS.tokenTtlSeconds,
      idleTimeoutSeconds: input.idleTimeoutSeconds ?? null,
      approval: await resolveApprovalRule(tx, caller.tenant.id, input.approval, PRIVILEGE_DEFAULTS.approval),
      ticket: input.ticket ?? PRIVILEGE_DEFAULTS.ticket,
      binding: PRIVILEGE_DEFAULTS.binding,
      attributes: input.attributes ?? {},
      connectors: await resolveConnectorNames(tx, caller.tenant.id, input.connectors ?? []),
      recording: input.recording ?? 'none',
      createdAt: now,
      updatedAt: now,
    };
    assertPrivilegeIsCoherent(privilege);
    try {
      await insertPrivilege(tx, privilege);
    } catch (err) {
      if (isUniqueViolation(err))
        throw new TetherError('already_exists', `a privilege named ${input.name} already exists`);
      throw err;
    }
    await recordAudit(tx, privilege.tenantId, now, {
      actor: caller.principal.id,
      action: 'privilege.created',
      target: privilege.id,
      outcome: 'success',
      details: { name: privilege.name },
    });
    return privilege;
  });
}

export type PrivilegeChanges = Partial<Omit<PrivilegeInput, 'name'>>;

export async function changePrivilege(
  ctx: BrokerContext,
  caller: Caller,
  ref: string,
  changes: PrivilegeChanges,
): Promise<Privilege> {
  requireRole(caller, 'admin');
  if (changes.audiences) assertAudiencesAreNotTheBroker(ctx, changes.audiences);
  return inTransaction(ctx.store, async (tx) => {
    const resolved = await resolvePrivilege(tx, caller.tenant.id, ref);
    // Locked: a concurrent edit must not write back a stale grant.
    const current = (await lockPrivilege(tx, caller.tenant.id, resolved.id)) ?? resolved;
    const now = ctx.clock.now();
    const next: Privilege = {
      ...current,
      ...(changes.description === undefined ? {} : { description: changes.description }),
      ...(changes.actions === undefined ? {} : { actions: [...new Set(changes.actions)] }),
      ...(changes.resources === undefined ? {} : { resources: [...new Set(changes.resources)] }),
      ...(changes.audiences === undefined ? {} : { audiences: [...new Set(changes.audiences)] }),
      ...(changes.maxDurationSeconds === undefined ? {} : { maxDurationSeconds: changes.maxDurationSeconds }),
      ...(changes.tokenTtlSeconds === undefined ? {} : { tokenTtlSeconds: changes.tokenTtlSeconds }),
      // Running sessions keep the idle timeout they were activated with.
      ...(changes.idleTimeoutSeconds === undefined ? {} : { idleTimeoutSeconds: changes.idleTimeoutSeconds }),
      ...(changes.ticket === undefined ? {} : { ticket: changes.ticket }),
      ...(changes.attributes === undefined ? {} : { attributes: changes.attributes }),
      // Sessions already running keep the credentials they got; new ones get these.
      ...(changes.connectors === undefined
        ? {}
        : { connectors: await resolveConnectorNames(tx, caller.tenant.id, changes.connectors) }),
      // Sessions already running keep the mode they were activated with.
      ...(changes.recording === undefined ? {} : { recording: changes.recording }),
      approval: await resolveApprovalRule(tx, caller.tenant.id, changes.approval, current.approval),
      updatedAt: now,
    };
    assertPrivilegeIsCoherent(next);
    await updatePrivilege(tx, next);
    // Its live sessions are judged again: what it no longer grants is taken from them.
    await enqueueReevaluation(
      ctx,
      tx,
      caller.tenant.id,
      { privilegeId: current.id },
      {
        kind: 'privilege_changed',
        privilege: current.id,
        by: caller.principal.id,
      },
    );
    await recordAudit(tx, caller.tenant.id, now, {
      actor: caller.principal.id,
      action: 'privilege.updated',
      target: current.id,
      outcome: 'success',
      details: { name: current.name, changes },
    });
    return next;
  });
}

export async function removePrivilege(ctx: BrokerContext, caller: Caller, ref: string): Promise<void> {
  requireRole(caller, 'admin');
  await inTransaction(ctx.store, async (tx) => {
    const privilege = await resolvePrivilege(tx, caller.tenant.id, ref);
    const open = await countRequestsForPrivilege(tx, caller.tenant.id, privilege.id);
    if (open > 0) {
      throw new TetherError(
        'record_in_use',
        `${privilege.name} has ${open} pending request(s); cancel them or let them be resolved first`,
      );
    }
    // The sessions standing on it end in the same transaction as the deletion.
    await endLiveSessionsOf(
      ctx,
      tx,
      caller.tenant.id,
      { privilegeId: privilege.id },
      ctx.clock.now(),
      'privilege_deleted',
      caller.principal.id,
    );
    await deletePrivilege(tx, caller.tenant.id, privilege.id);
    await recordAudit(tx, caller.tenant.id, ctx.clock.now(), {
      actor: caller.principal.id,
      action: 'privilege.deleted',
      target: privilege.id,
      outcome: 'success',
      details: { name: privilege.name },
    });
  });
}

export async function findPrivileges(ctx: BrokerContext, caller: Caller): Promise<Privilege[]> {
  return listPrivileges(ctx.store, caller.tenant.id);
}

export async function getPrivilege(ctx: BrokerContext, caller: Caller, ref: string): Promise<Privilege> {
  return resolvePrivilege(ctx.store, caller.tenant.id, ref);
}
