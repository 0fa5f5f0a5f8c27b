import { TetherError } from '@tether-broker/protocol';
import { importJWK } from 'jose';
import { recordAudit } from '../audit/record.js';
import { jwksCacheOf } from '../auth/subject-token.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { endSessionIn } from '../core/end-session.js';
import { resolvePrincipal } from '../core/resolve.js';
import {
  assertFederationIsCoherent,
  assertTenantAudience,
  FEDERATED_PRINCIPAL_KINDS,
  FEDERATION_DEFAULTS,
  type Federation,
  type FederationAlgorithm,
  type MappingRule,
} from '../domain/federation.js';
import { isIdOf, newId } from '../domain/ids.js';
import { hasPrivateMembers } from '../domain/principal.js';
import { assertDestination } from '../net/client.js';
import { inTransaction, isUniqueViolation, type StoreHandle, type TxHandle } from '../store/database.js';
import {
  deleteFederation,
  findFederation,
  findFederationByName,
  insertFederation,
  issuerAudienceTaken,
  listFederations,
  listLiveSessionsOfFederation,
  lockFederation,
} from '../store/repositories/federations.js';
import { lockSession } from '../store/repositories/sessions.js';

/** What an admin gives to create a trust record; the API's snake_case fields, in camelCase. */
export interface FederationInput {
  name: string;
  issuer: string;
  audience: string;
  jwksUri?: string | undefined;
  jwks?: { keys: Record<string, unknown>[] } | undefined;
  algorithms?: string[] | undefined;
  /** Rules in order; `principal` is a principal's name or id. */
  principalMapping: MappingRule[];
  contextClaims?: string[] | undefined;
  taskClaim?: string | undefined;
  maxTokenAgeSeconds?: number | undefined;
  /** Sessions end, at the latest, when the subject token expires (default false). */
  endsWithSubjectToken?: boolean | undefined;
}

/** The algorithm a key of each type is checked with when it is registered. */
function probeAlgorithm(jwk: Record<string, unknown>): string | undefined {
  if (jwk.kty === 'RSA') return 'RS256';
  if (jwk.kty === 'EC') return { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }[String(jwk.crv)];
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  return undefined;
}

/**
 * An inline JWKS must hold public signature keys only. A private or symmetric member is
 * refused without echoing any of the key.
 */
async function assertPublicKeySet(jwks: { keys: Record<string, unknown>[] }): Promise<void> {
  for (const [i, jwk] of jwks.keys.entries()) {
    if (hasPrivateMembers(jwk)) {
      throw new TetherError(
        'invalid_key',
        `jwks.keys[${i}] holds private or secret key material; give the issuer's public keys only`,
      );
    }
    const alg = probeAlgorithm(jwk);
    if (!alg) throw new TetherError('invalid_key', `jwks.keys[${i}] is not an RSA, EC or Ed25519 public key`);
    try {
      await importJWK(jwk, alg);
    } catch {
      throw new TetherError('invalid_key', `jwks.keys[${i}] is not a valid public key`);
    }
  }
}

/** Mapping rules name principals; they become ids, and only non-human kinds are accepted. */
async function resolveMapping(tx: TxHandle, tenantId: string, rules: MappingRule[]): Promise<MappingRule[]> {
  const resolved: MappingRule[] = [];
  for (const [i, rule] of rules.entries()) {
    const principal = await resolvePrincipal(tx, tenantId, rule.principal);
    if (!(FEDERATED_PRINCIPAL_KINDS as readonly string[]).includes(principal.kind)) {
      throw new TetherError(
        'invalid_request',
        `principal_mapping[${i}]: ${principal.name} is a ${principal.kind}; a workload maps to a ${FEDERATED_PRINCIPAL_KINDS.join(', ')} principal`,
      );
    }
    resolved.push({ match: { ...rule.match }, principal: principal.id });
  }
  return resolved;
}

const nameTaken = (name: string) =>
  new TetherError('already_exists', `a trust record named ${name} already exists`);

/**
 * The one answer to an (issuer, audience) already trusted. The audience is the tenant's own, so
 * the holder is in the caller's tenant (or, for a record older than tenant audiences, one that
 * took this tenant's audience before): either way the answer names nothing the caller did not
 * send, and is the same whoever holds it.
 */
const taken = () =>
  new TetherError('already_exists', 'a trust record for this issuer and audience already exists');

/**
 * An admin trusts a workload issuer. The exchange's caller has no credential but the token, so
 * its `iss` and `aud` alone must lead to one trust record: the audience is the tenant's own
 * (`<public URL>/tenants/<name>`, or a suffix of it), which makes (issuer, audience) unique
 * across tenants without letting one tenant claim a pair another tenant's workloads use.
 */
export async function createFederation(
  ctx: BrokerContext,
  caller: Caller,
  input: FederationInput,
): Promise<Federation> {
  requireRole(caller, 'admin');
  if (input.issuer.replace(/\/+$/, '') === ctx.config.publicUrl) {
    throw new TetherError('invalid_request', 'the broker cannot trust itself as a workload issuer');
  }
  const draft = {
    issuer: input.issuer,
    audience: input.audience,
    jwksUri: input.jwksUri ?? null,
    jwks: input.jwks ?? null,
    algorithms: [...new Set(input.algorithms ?? FEDERATION_DEFAULTS.algorithms)] as FederationAlgorithm[],
    principalMapping: input.principalMapping,
    contextClaims: [...new Set(input.contextClaims ?? [])],
    taskClaim: input.taskClaim ?? FEDERATION_DEFAULTS.taskClaim,
    maxTokenAgeSeconds: input.maxTokenAgeSeconds ?? FEDERATION_DEFAULTS.maxTokenAgeSeconds,
    endsWithSubjectToken: input.endsWithSubjectToken ?? false,
  };
  assertFederationIsCoherent(draft);
  assertTenantAudience(draft.audience, ctx.config.publicUrl, caller.tenant.name);
  assertDestination(ctx, 'jwks_uri', draft.jwksUri);
  if (draft.jwks) await assertPublicKeySet(draft.jwks);
  return inTransaction(ctx.store, async (tx) => {
    if (await findFederationByName(tx, caller.tenant.id, input.name)) throw nameTaken(input.name);
    if (await issuerAudienceTaken(tx, draft.issuer, draft.audience)) throw taken();
    const now = ctx.clock.now();
    const federation: Federation = {
      ...draft,
      id: newId('federation'),
      tenantId: caller.tenant.id,
      name: input.name,
      principalMapping: await resolveMapping(tx, caller.tenant.id, draft.principalMapping),
      createdAt: now,
    };
    try {
      await insertFederation(tx, federation);
    } catch (err) {
      // A concurrent create won the race; the checks above name the conflict on a retry.
      if (isUniqueViolation(err))
        throw new TetherError(
          'already_exists',
          'a trust record with that name, or that issuer and audience, already exists',
        );
      throw err;
    }
    await recordAudit(tx, federation.tenantId, now, {
      actor: caller.principal.id,
      action: 'federation.created',
      target: federation.id,
      outcome: 'success',
      details: {
        name: federation.name,
        issuer: federation.issuer,
        audience: federation.audience,
        keys: federation.jwksUri ?? 'inline',
        algorithms: federation.algorithms,
        principals: [...new Set(federation.principalMapping.map((r) => r.principal))],
        ends_with_subject_token: federation.endsWithSubjectToken,
      },
    });
    return federation;
  });
}

async function resolveFederation(h: StoreHandle, tenantId: string, ref: string): Promise<Federation> {
  const found = isIdOf('federation', ref)
    ? await findFederation(h, tenantId, ref)
    : await findFederationByName(h, tenantId, ref);
  if (!found) throw new TetherError('not_found', `no trust record ${JSON.stringify(ref)} in this tenant`);
  return found;
}

/**
 * An admin withdraws trust in an issuer. The sessions it started end with it (`trust_changed`),
 * in the same transaction: the access they hold rested on that trust.
 */
export async function removeFederation(ctx: BrokerContext, caller: Caller, ref: string): Promise<void> {
  requireRole(caller, 'admin');
  await inTransaction(ctx.store, async (tx) => {
    const found = await resolveFederation(tx, caller.tenant.id, ref);
    const federation = await lockFederation(tx, found.id);
    if (!federation)
      throw new TetherError('not_found', `no trust record ${JSON.stringify(ref)} in this tenant`);
    await deleteFederation(tx, caller.tenant.id, federation.id);
    const now = ctx.clock.now();
    const ended: string[] = [];
    for (const id of await listLiveSessionsOfFederation(tx, federation.id)) {
      const session = await lockSession(tx, id);
      const done = session
        ? await endSessionIn(ctx, tx, session, now, 'trust_changed', caller.principal.id, {
            federation: federation.name,
          })
        : null;
      if (done) ended.push(done.id);
    }
    await recordAudit(tx, caller.tenant.id, now, {
      actor: caller.principal.id,
      action: 'federation.deleted',
      target: federation.id,
      outcome: 'success',
      details: {
        name: federation.name,
        issuer: federation.issuer,
        audience: federation.audience,
        ended_sessions: ended,
      },
    });
    tx.onCommit(() => jwksCacheOf(ctx).forget(federation.id));
  });
}

export async function findFederations(ctx: BrokerContext, caller: Caller): Promise<Federation[]> {
  return listFederations(ctx.store, caller.tenant.id);
}

export async function getFederation(ctx: BrokerContext, caller: Caller, ref: string): Promise<Federation> {
  return resolveFederation(ctx.store, caller.tenant.id, ref);
}
