import { type PrincipalKind, type Role, TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { verifyKeyProof } from '../auth/key-proof.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { capSessionsAtContractEnd, endOutOfContract } from '../core/contracts.js';
import { endLiveSessionsOf } from '../core/end-sessions-of.js';
import { acceptPublicKey } from '../core/public-keys.js';
import { resolvePrincipal } from '../core/resolve.js';
import {
  type ContractChange,
  type ContractWindow,
  changedContract,
  contractActiveAt,
  contractNarrowed,
} from '../domain/contract.js';
import { newId } from '../domain/ids.js';
import { hasRole, type Principal, type PrincipalKey } from '../domain/principal.js';
import { enqueueReevaluation } from '../evaluation/jobs.js';
import { reevaluateSeatsOf } from '../evaluation/seat-reevaluation.js';
import { inTransaction, isUniqueViolation, type TxHandle } from '../store/database.js';
import {
  deletePrincipalKey,
  insertPrincipal,
  insertPrincipalKey,
  listPrincipalKeys,
  listPrincipals,
  lockPrincipal,
  updatePrincipal,
} from '../store/repositories/principals.js';

export interface NewPrincipal {
  name: string;
  kind: PrincipalKind;
  roles?: Role[] | undefined;
  attributes?: Record<string, string> | undefined;
  keys?: Record<string, unknown>[] | undefined;
  /** RFC 3339 times, as the API takes them; see domain/contract.ts. */
  contract?: { starts_at?: string | undefined; ends_at?: string | undefined } | undefined;
}

/** A contract window as the API takes it: RFC 3339 times, null to remove a bound. */
interface ContractInput {
  starts_at?: string | null | undefined;
  ends_at?: string | null | undefined;
}

/** The API's contract as a change of epoch milliseconds. */
function contractChange(contract: ContractInput | null | undefined): ContractChange | null | undefined {
  if (contract === undefined || contract === null) return contract;
  const ms = (time: string | null | undefined) =>
    time === undefined || time === null ? time : Date.parse(time);
  return { startsAt: ms(contract.starts_at), endsAt: ms(contract.ends_at) };
}

/** The audit form of a contract window: RFC 3339 times, null for none. */
function contractAudit(contract: ContractWindow | undefined): Record<string, string | null> | null {
  if (!contract) return null;
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return { starts_at: iso(contract.startsAt), ends_at: iso(contract.endsAt) };
}

export async function createPrincipal(
  ctx: BrokerContext,
  caller: Caller,
  input: NewPrincipal,
): Promise<Principal> {
  requireRole(caller, 'admin');
  const keys = await Promise.all((input.keys ?? []).map(acceptPublicKey));
  const now = ctx.clock.now();
  const contract = changedContract(undefined, contractChange(input.contract), now, true);
  const principal: Principal = {
    id: newId('principal'),
    tenantId: caller.tenant.id,
    name: input.name,
    kind: input.kind,
    enabled: true,
    roles: [...new Set(input.roles ?? [])],
    attributes: input.attributes ?? {},
    createdAt: now,
    updatedAt: now,
    ...(contract ? { contract } : {}),
  };
  return inTransaction(ctx.store, async (tx) => {
    try {
      await insertPrincipal(tx, principal);
    } catch (err) {
      if (isUniqueViolation(err))
        throw new TetherError('already_exists', `a principal named ${input.name} already exists`);
      throw err;
    }
    for (const key of keys) {
      await insertPrincipalKey(tx, principal.tenantId, {
        principalId: principal.id,
        kid: key.kid,
        publicJwk: key.publicJwk,
        createdAt: now,
      });
    }
    await recordAudit(tx, principal.tenantId, now, {
      actor: caller.principal.id,
      action: 'principal.created',
      target: principal.id,
      outcome: 'success',
      principalId: principal.id,
      details: {
        name: principal.name,
        kind: principal.kind,
        roles: principal.roles,
        keys: keys.map((k) => k.kid),
        ...(contract ? { contract: contractAudit(contract) } : {}),
      },
    });
    return principal;
  });
}

export interface PrincipalChanges {
  enabled?: boolean | undefined;
  roles?: Role[] | undefined;
  attributes?: Record<string, string> | undefined;
  /** A side given replaces it, null removes it; `null` removes the window. Admins only. */
  contract?: ContractInput | null | undefined;
}

export async function changePrincipal(
  ctx: BrokerContext,
  caller: Caller,
  ref: string,
  changes: PrincipalChanges,
): Promise<Principal> {
  requireRole(caller, 'admin');
  return inTransaction(ctx.store, async (tx) => {
    const resolved = await resolvePrincipal(tx, caller.tenant.id, ref);
    // Locked: a concurrent edit must not write back a stale `enabled` or `roles`.
    const current = (await lockPrincipal(tx, caller.tenant.id, resolved.id)) ?? resolved;
    if (
      current.id === caller.principal.id &&
      (changes.enabled === false || (changes.roles && !changes.roles.includes('admin')))
    ) {
      // Locking yourself out of the tenant is almost always a mistake; another admin can do it.
      throw new TetherError(
        'forbidden',
        'an admin may not disable themselves or remove their own admin role',
      );
    }
    // A provider operator's seat stands for someone the customer does not manage: it may be
    // disabled (and enabled again), nothing more.
    if (
      current.home &&
      (changes.roles !== undefined || changes.attributes !== undefined || changes.contract !== undefined)
    )
      throw new TetherError(
        'seat_restricted',
        `${current.name} is a provider operator's seat: it may only be disabled`,
      );
    const now = ctx.clock.now();
    const contract = changedContract(current.contract, contractChange(changes.contract), now, false);
    const { contract: _previous, ...rest } = current;
    const next: Principal = {
      ...rest,
      ...(changes.enabled === undefined ? {} : { enabled: changes.enabled }),
      ...(changes.roles === undefined ? {} : { roles: [...new Set(changes.roles)] }),
      ...(changes.attributes === undefined ? {} : { attributes: changes.attributes }),
      ...(contract ? { contract } : {}),
      updatedAt: now,
    };
    await updatePrincipal(tx, next);
    const contractEffects = await applyContractChange(ctx, tx, current, next, now, caller.principal.id);
    if (current.enabled && !next.enabled) {
      // A disabled operator holds nothing in its customers' tenants either: its seats' live
      // sessions are judged again there (the standing reads the operator at home).
      await reevaluateSeatsOf(ctx, tx, caller.tenant.id, current.id, {
        kind: 'principal_changed',
        principal: current.id,
        by: caller.principal.id,
      });
      // A disabled principal holds nothing: its live sessions end with the change.
      await endLiveSessionsOf(
        ctx,
        tx,
        caller.tenant.id,
        { principalId: current.id },
        now,
        'principal_disabled',
        caller.principal.id,
      );
    }
    if (next.enabled && JSON.stringify(next.attributes) !== JSON.stringify(current.attributes)) {
      // Policies read attributes as tags: the principal's live sessions are judged again.
      await enqueueReevaluation(
        ctx,
        tx,
        caller.tenant.id,
        { principalId: current.id },
        {
          kind: 'principal_changed',
          principal: current.id,
          by: caller.principal.id,
        },
      );
    }
    await recordAudit(tx, caller.tenant.id, now, {
      actor: caller.principal.id,
      action: changes.enabled === false ? 'principal.disabled' : 'principal.updated',
      target: current.id,
      outcome: 'success',
      principalId: current.id,
      // A disabled principal's broker-API tokens are refused from its next call on (authenticateCaller).
      details: {
        changes,
        ...(current.enabled && !next.enabled ? { api_tokens_revoked: true } : {}),
        ...contractEffects,
      },
    });
    return next;
  });
}

/**
 * What a changed contract window does to what the principal holds, inside the change's
 * transaction: out of the window now, its live sessions end (`contract_ended`) and its pending
 * requests are cancelled at once; with an earlier end still ahead, its live sessions are capped
 * at that end. A longer window gives nothing back: sessions keep the expiry they have. Answers
 * what it did, for the change's audit record.
 */
async function applyContractChange(
  ctx: BrokerContext,
  tx: TxHandle,
  before: Principal,
  after: Principal,
  now: number,
  by: string,
): Promise<Record<string, unknown>> {
  if (!contractNarrowed(before.contract, after.contract)) return {};
  const contract = { contract: contractAudit(after.contract) };
  if (!contractActiveAt(after.contract, now)) {
    const { sessions, requests } = await endOutOfContract(ctx, tx, after, now, by);
    return { ...contract, ended_sessions: sessions.map((s) => s.id), cancelled_requests: requests };
  }
  const endsAt = after.contract?.endsAt ?? null;
  if (endsAt === null) return contract;
  return { ...contract, capped_sessions: await capSessionsAtContractEnd(tx, after, endsAt, now, by) };
}

/**
 * Registers a key for a principal. An admin may add keys to any principal of the tenant (an
 * admin can create principals with keys anyway, so a proof would not narrow what a stolen admin
 * token can do). Anyone else may add a key only to itself, and only with `proof`: a JWS made
 * for this call by one of its currently registered keys (see {@link verifyKeyProof}), so a
 * stolen broker-API token — Bearer, or DPoP-bound with its DPoP key — cannot plant a key of
 * its own and outlive the token.
 */
export async function addPrincipalKey(
  ctx: BrokerContext,
  caller: Caller,
  ref: string,
  jwk: Record<string, unknown>,
  proof?: string,
): Promise<PrincipalKey> {
  const principal = await resolvePrincipal(ctx.store, caller.tenant.id, ref);
  if (principal.home)
    throw new TetherError(
      'seat_restricted',
      `${principal.name} is a provider operator's seat: it signs with its operator's own keys`,
    );
  const admin = hasRole(caller.principal, 'admin');
  if (principal.id !== caller.principal.id && !admin) requireRole(caller, 'admin');
  const { kid, publicJwk } = await acceptPublicKey(jwk);
  const now = ctx.clock.now();
  const key: PrincipalKey = { principalId: principal.id, kid, publicJwk, createdAt: now };
  let provenBy: string | undefined;
  await inTransaction(ctx.store, async (tx) => {
    if (!admin) {
      // Read in the transaction: a key removed a moment ago proves nothing any more.
      const registered = await listPrincipalKeys(tx, principal.id);
      provenBy = (
        await verifyKeyProof(tx, principal, registered, proof, {
          audience: keyProofAudience(ctx.config.publicUrl, principal.id),
          newKid: kid,
          maxAgeSeconds: ctx.config.clientAssertionMaxAgeSeconds,
          clockToleranceSeconds: ctx.config.clockToleranceSeconds,
          now,
        })
      ).kid;
    }
    try {
      await insertPrincipalKey(tx, caller.tenant.id, key);
    } catch (err) {
      if (isUniqueViolation(err))
        throw new TetherError('already_exists', 'that key is already registered for this principal');
      throw err;
    }
    await recordAudit(tx, caller.tenant.id, now, {
      actor: caller.principal.id,
      action: 'principal.key.added',
      target: principal.id,
      outcome: 'success',
      principalId: principal.id,
      details: { kid, ...(provenBy ? { proven_by: provenBy } : {}) },
    });
  });
  return key;
}

/** The `aud` of a key proof: the add-key route of the principal, by id, under the public URL. */
export function keyProofAudience(publicUrl: string, principalId: string): string {
  return `${publicUrl.replace(/\/+$/, '')}/v1/principals/${principalId}/keys`;
}

/**
 * Removes a key. Every broker-API token minted with it stops working on its very next call:
 * tokens carry the thumbprint of the key whose assertion obtained them, and authentication
 * requires that key to be registered still (see authenticateCaller). The audit record says so.
 */
export async function removePrincipalKey(
  ctx: BrokerContext,
  caller: Caller,
  ref: string,
  kid: string,
): Promise<void> {
  const principal = await resolvePrincipal(ctx.store, caller.tenant.id, ref);
  if (principal.id !== caller.principal.id) requireRole(caller, 'admin');
  await inTransaction(ctx.store, async (tx) => {
    if (!(await deletePrincipalKey(tx, caller.tenant.id, principal.id, kid))) {
      throw new TetherError('not_found', `principal ${principal.name} has no key ${kid}`);
    }
    await recordAudit(tx, caller.tenant.id, ctx.clock.now(), {
      actor: caller.principal.id,
      action: 'principal.key.removed',
      target: principal.id,
      outcome: 'success',
      principalId: principal.id,
      details: { kid, api_tokens_revoked: true },
    });
  });
}

export async function getPrincipal(
  ctx: BrokerContext,
  caller: Caller,
  ref: string,
): Promise<{ principal: Principal; keys: PrincipalKey[] }> {
  const principal = await resolvePrincipal(ctx.store, caller.tenant.id, ref);
  return { principal, keys: await listPrincipalKeys(ctx.store, principal.id) };
}

export async function findPrincipals(ctx: BrokerContext, caller: Caller): Promise<Principal[]> {
  return listPrincipals(ctx.store, caller.tenant.id);
}

/** Re-exported: where principals' keys have always been accepted from. */
export { acceptPublicKey };
