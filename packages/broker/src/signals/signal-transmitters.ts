import { TetherError } from '@tether-broker/protocol';
import { importJWK } from 'jose';
import { recordAudit } from '../audit/record.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { assertTenantAudience, tenantAudience } from '../domain/federation.js';
import { isIdOf, newId } from '../domain/ids.js';
import { hasPrivateMembers } from '../domain/principal.js';
import { assertTransmitterIsCoherent, type SignalTransmitter } from '../domain/transmitter.js';
import { assertDestination } from '../net/client.js';
import { inTransaction, isUniqueViolation, type StoreHandle } from '../store/database.js';
import {
  deleteTransmitter,
  findTransmitter,
  insertTransmitter,
  listTransmitters,
  transmitterIssuerAudienceTaken,
} from '../store/repositories/signal-transmitters.js';
import { transmitterKeysOf } from './transmitter-keys.js';

/** What an admin gives to register a transmitter; the API's fields in camelCase. */
export interface TransmitterInput {
  name: string;
  issuer: string;
  /** Default: the tenant's audience, `<public URL>/tenants/<tenant name>`. */
  audience?: string | undefined;
  jwksUri?: string | undefined;
  jwks?: { keys: Record<string, unknown>[] } | undefined;
}

/** Key types a SET may be verified with, and the algorithm each is checked with here. */
const PROBE_ALGORITHM: Record<string, string> = { RSA: 'RS256', EC: 'ES256', OKP: 'EdDSA' };

/** An inline JWKS holds public signature keys only; a private or symmetric member is refused without echoing it. */
async function assertPublicKeys(jwks: { keys: Record<string, unknown>[] }): Promise<void> {
  for (const [i, jwk] of jwks.keys.entries()) {
    if (hasPrivateMembers(jwk))
      throw new TetherError(
        'invalid_key',
        `jwks.keys[${i}] holds private or secret key material; give public keys only`,
      );
    const alg = PROBE_ALGORITHM[String(jwk.kty)];
    if (!alg || (jwk.kty === 'EC' && jwk.crv !== 'P-256') || (jwk.kty === 'OKP' && jwk.crv !== 'Ed25519'))
      throw new TetherError('invalid_key', `jwks.keys[${i}] is not an RSA, P-256 or Ed25519 public key`);
    try {
      await importJWK(jwk, alg);
    } catch {
      throw new TetherError('invalid_key', `jwks.keys[${i}] is not a valid public key`);
    }
  }
}

/**
 * An admin registers a CAEP transmitter. A pushed SET has nothing but its `iss` and `aud` to
 * say which tenant it is for, so the audience is the tenant's own (`<public URL>/tenants/<name>`
 * by default, or a suffix of it): (issuer, audience) is unique across tenants, and no tenant can
 * claim a pair another tenant's transmitter uses. A conflict answer names nothing the caller did
 * not send.
 */
export async function createTransmitter(
  ctx: BrokerContext,
  caller: Caller,
  input: TransmitterInput,
): Promise<SignalTransmitter> {
  requireRole(caller, 'admin');
  const draft = {
    issuer: input.issuer,
    audience: input.audience ?? tenantAudience(ctx.config.publicUrl, caller.tenant.name),
    jwksUri: input.jwksUri ?? null,
    jwks: input.jwks ?? null,
  };
  assertTransmitterIsCoherent(draft, ctx.config.publicUrl);
  assertTenantAudience(draft.audience, ctx.config.publicUrl, caller.tenant.name);
  assertDestination(ctx, 'jwks_uri', draft.jwksUri);
  if (draft.jwks) await assertPublicKeys(draft.jwks);
  return inTransaction(ctx.store, async (tx) => {
    const taken = () =>
      new TetherError(
        'already_exists',
        'a transmitter with this name, or for this issuer and audience, already exists',
      );
    if (await findTransmitter(tx, caller.tenant.id, { name: input.name })) throw taken();
    if (await transmitterIssuerAudienceTaken(tx, draft.issuer, draft.audience)) throw taken();
    const now = ctx.clock.now();
    const transmitter: SignalTransmitter = {
      ...draft,
      id: newId('signalTransmitter'),
      tenantId: caller.tenant.id,
      name: input.name,
      createdBy: caller.principal.id,
      createdAt: now,
    };
    try {
      await insertTransmitter(tx, transmitter);
    } catch (err) {
      if (isUniqueViolation(err)) throw taken();
      throw err;
    }
    await recordAudit(tx, caller.tenant.id, now, {
      actor: caller.principal.id,
      action: 'signal_transmitter.created',
      target: transmitter.id,
      outcome: 'success',
      details: {
        name: transmitter.name,
        issuer: transmitter.issuer,
        audience: transmitter.audience,
        keys: transmitter.jwksUri ?? 'inline',
      },
    });
    return transmitter;
  });
}

async function resolveTransmitter(h: StoreHandle, tenantId: string, ref: string): Promise<SignalTransmitter> {
  const found = await findTransmitter(
    h,
    tenantId,
    isIdOf('signalTransmitter', ref) ? { id: ref } : { name: ref },
  );
  if (!found)
    throw new TetherError('not_found', `no signal transmitter ${JSON.stringify(ref)} in this tenant`);
  return found;
}

/** An admin stops accepting a transmitter's signals. What they already changed stays. */
export async function removeTransmitter(ctx: BrokerContext, caller: Caller, ref: string): Promise<void> {
  requireRole(caller, 'admin');
  await inTransaction(ctx.store, async (tx) => {
    const transmitter = await resolveTransmitter(tx, caller.tenant.id, ref);
    if (!(await deleteTransmitter(tx, caller.tenant.id, transmitter.id)))
      throw new TetherError('not_found', `no signal transmitter ${JSON.stringify(ref)} in this tenant`);
    await recordAudit(tx, caller.tenant.id, ctx.clock.now(), {
      actor: caller.principal.id,
      action: 'signal_transmitter.deleted',
      target: transmitter.id,
      outcome: 'success',
      details: { name: transmitter.name, issuer: transmitter.issuer, audience: transmitter.audience },
    });
    tx.onCommit(() => transmitterKeysOf(ctx).forget(transmitter.id));
  });
}

export async function findTransmitters(ctx: BrokerContext, caller: Caller): Promise<SignalTransmitter[]> {
  requireRole(caller, 'admin', 'auditor');
  return listTransmitters(ctx.store, caller.tenant.id);
}

export async function getTransmitter(
  ctx: BrokerContext,
  caller: Caller,
  ref: string,
): Promise<SignalTransmitter> {
  requireRole(caller, 'admin', 'auditor');
  return resolveTransmitter(ctx.store, caller.tenant.id, ref);
}
