import { type PrincipalKind, type Role, TetherError } from '@tether-broker/protocol';
import { calculateJwkThumbprint, importJWK, type JWK } from 'jose';
import { recordAudit } from '../audit/record.js';
import { verifyKeyProof } from '../auth/key-proof.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { endLiveSessionsOf } from '../core/end-sessions-of.js';
import { resolvePrincipal } from '../core/resolve.js';
import { newId } from '../domain/ids.js';
import { hasPrivateMembers, hasRole, type Principal, type PrincipalKey } from '../domain/principal.js';
import { enqueueReevaluation } from '../evaluation/jobs.js';
import { inTransaction, isUniqueViolation } from '../store/database.js';
import {
  deletePrincipalKey,
  insertPrincipal,
  insertPrincipalKey,
  listPrincipalKeys,
  listPrincipals,
  lockPrincipal,
  updatePrincipal,
} from '../store/repositories/principals.js';

/** Key types a principal may register: asymmetric signature keys only. */
const ACCEPTED_KEYS: Record<string, string[]> = { OKP: ['Ed25519'], EC: ['P-256', 'P-384'] };

/**
 * Checks that a JWK is a public signature key we accept and returns its canonical public
 * form with its RFC 7638 thumbprint. A private key is refused without echoing any of it.
 */
export async function acceptPublicKey(
  jwk: Record<string, unknown>,
): Promise<{ kid: string; publicJwk: JWK }> {
  if (hasPrivateMembers(jwk)) {
    throw new TetherError(
      'invalid_key',
      'that is a private key; register the public key only (the private key never leaves its holder)',
    );
  }
  const kty = typeof jwk.kty === 'string' ? jwk.kty : '';
  const crv = typeof jwk.crv === 'string' ? jwk.crv : '';
  if (!ACCEPTED_KEYS[kty]?.includes(crv)) {
    throw new TetherError('invalid_key', 'only Ed25519 (OKP) and P-256/P-384 (EC) public keys are accepted');
  }
  const publicJwk: JWK =
    kty === 'OKP' ? { kty, crv, x: jwk.x as string } : { kty, crv, x: jwk.x as string, y: jwk.y as string };
  try {
    await importJWK(publicJwk, kty === 'OKP' ? 'EdDSA' : crv === 'P-256' ? 'ES256' : 'ES384');
    return { kid: await calculateJwkThumbprint(publicJwk), publicJwk };
  } catch {
    throw new TetherError('invalid_key', 'the key material is not a valid public key');
  }
}

export interface NewPrincipal {
  name: string;
  kind: PrincipalKind;
  roles?: Role[] | undefined;
  attributes?: Record<string, string> | undefined;
  keys?: Record<string, unknown>[] | undefined;
}

export async function createPrincipal(
  ctx: BrokerContext,
  caller: Caller,
  input: NewPrincipal,
): Promise<Principal> {
  requireRole(caller, 'admin');
  const keys = await Promise.all((input.keys ?? []).map(acceptPublicKey));
  const now = ctx.clock.now();
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
      },
    });
    return principal;
  });
}

export interface PrincipalChanges {
  enabled?: boolean | undefined;
  roles?: Role[] | undefined;
  attributes?: Record<string, string> | undefined;
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
    const now = ctx.clock.now();
    const next: Principal = {
      ...current,
      ...(changes.enabled === undefined ? {} : { enabled: changes.enabled }),
      ...(changes.roles === undefined ? {} : { roles: [...new Set(changes.roles)] }),
      ...(changes.attributes === undefined ? {} : { attributes: changes.attributes }),
      updatedAt: now,
    };
    await updatePrincipal(tx, next);
    if (current.enabled && !next.enabled) {
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
      details: { changes, ...(current.enabled && !next.enabled ? { api_tokens_revoked: true } : {}) },
    });
    return next;
  });
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
