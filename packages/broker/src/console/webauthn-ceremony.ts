import { type AuthenticationResponseJSON, verifyAuthenticationResponse } from '@simplewebauthn/server';
import { openSecret } from '../config/key-encryption.js';
import type { BrokerContext } from '../core/context.js';
import type { TxHandle } from '../store/database.js';
import type { PasskeyRow } from '../store/schema.js';

/**
 * The parts of a WebAuthn ceremony every console flow shares: the relying party (the broker's
 * public URL), challenges stored and taken once, and checking an assertion against a stored
 * passkey whose sealed public key must open for its own principal.
 */

/** Seconds a ceremony's challenge stays usable. */
export const CHALLENGE_SECONDS = 300;

export type CeremonyPurpose = 'enrol' | 'sign_in' | 'verify';

export function relyingParty(ctx: BrokerContext): { rpID: string; origin: string } {
  const url = new URL(ctx.config.publicUrl);
  return { rpID: url.hostname, origin: url.origin };
}

export async function rememberChallenge(
  ctx: BrokerContext,
  challenge: string,
  purpose: CeremonyPurpose,
  principal: { tenantId: string; id: string } | null,
): Promise<void> {
  const now = ctx.clock.now();
  await ctx.store.db.deleteFrom('webauthn_challenges').where('expires_at', '<', now).execute();
  await ctx.store.db
    .insertInto('webauthn_challenges')
    .values({
      challenge,
      purpose,
      tenant_id: principal?.tenantId ?? null,
      principal_id: principal?.id ?? null,
      expires_at: now + CHALLENGE_SECONDS * 1000,
    })
    .execute();
}

/** Takes a stored challenge once: true when it was the broker's, for this purpose (and principal), still fresh. */
export async function takeChallenge(
  tx: TxHandle,
  challenge: string,
  purpose: CeremonyPurpose,
  now: number,
  principalId?: string,
): Promise<boolean> {
  const row = await tx.db
    .selectFrom('webauthn_challenges')
    .selectAll()
    .where('challenge', '=', challenge)
    .executeTakeFirst();
  if (!row) return false;
  await tx.db.deleteFrom('webauthn_challenges').where('challenge', '=', challenge).execute();
  return (
    row.purpose === purpose &&
    now < row.expires_at &&
    (principalId === undefined || row.principal_id === principalId)
  );
}

/**
 * Checks a passkey assertion: a stored passkey (of `principalId`, when given) whose seal opens
 * for its principal, the broker's unused challenge for `purpose`, the origin and RP ID, user
 * verification, a counter moving forward. Answers the row and its new counter, or why not
 * (with the tenant and principal when they are known, for the audit trail).
 */
export async function verifyStoredPasskey(
  ctx: BrokerContext,
  tx: TxHandle,
  response: AuthenticationResponseJSON,
  purpose: CeremonyPurpose,
  now: number,
  principalId?: string,
): Promise<
  { row: PasskeyRow; newCounter: number } | { refused: string; tenant?: string; principal?: string }
> {
  const { rpID, origin } = relyingParty(ctx);
  const id = typeof response?.id === 'string' ? response.id.slice(0, 1024) : '';
  const row = await tx.db
    .selectFrom('passkeys')
    .selectAll()
    .where('credential_id', '=', id)
    .executeTakeFirst();
  if (!row || (principalId !== undefined && row.principal_id !== principalId))
    return { refused: 'this passkey is not known here' };
  const known = { tenant: row.tenant_id, principal: row.principal_id };
  let publicKey: Uint8Array;
  try {
    const binding = { tenant: row.tenant_id, principal: row.principal_id, credential: row.credential_id };
    publicKey = Buffer.from(await openSecret(ctx.kek, row.sealed_public_key, binding), 'base64url');
  } catch {
    return { refused: 'this passkey is not known here', ...known };
  }
  try {
    const verified = await verifyAuthenticationResponse({
      response,
      expectedChallenge: (challenge) => takeChallenge(tx, challenge, purpose, now),
      expectedOrigin: origin,
      expectedRPID: rpID,
      credential: {
        id: row.credential_id,
        publicKey: new Uint8Array(publicKey),
        counter: Number(row.counter),
        transports: JSON.parse(row.transports),
      },
      requireUserVerification: true,
    });
    if (!verified.verified) return { refused: 'the passkey could not be verified', ...known };
    return { row, newCounter: verified.authenticationInfo.newCounter };
  } catch (err) {
    return {
      refused: `the passkey could not be verified: ${(err as Error).message.slice(0, 200)}`,
      ...known,
    };
  }
}
