import { createHash, randomBytes } from 'node:crypto';
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { startConsoleSession } from '../auth/console-session.js';
import { sealSecret } from '../config/key-encryption.js';
import { requireRole } from '../core/access-control.js';
import { recordRefusal } from '../core/audit-refusal.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { resolvePrincipal } from '../core/resolve.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import { findPrincipal } from '../store/repositories/principals.js';
import { relyingParty, rememberChallenge, takeChallenge, verifyStoredPasskey } from './webauthn-ceremony.js';

/**
 * Passkeys (WebAuthn, via @simplewebauthn/server): people enrol their own from a one-time link
 * an admin makes, so no private key is ever made on someone else's machine, and sign in to the
 * console with them. Every ceremony's challenge is the broker's, stored and taken once; the
 * relying party is the broker's public URL (its host is the RP ID, its origin the only one
 * accepted); user verification is required. A passkey's public key is sealed, bound to its
 * tenant, principal and credential id, so a row planted in the store signs nobody in.
 */

/** Seconds: how long an enrolment link and a ceremony's challenge stay usable. */
export const PASSKEY_LIMITS = {
  invitationSeconds: 24 * 3600,
  challengeSeconds: 300,
  passkeysPerPrincipal: 10,
};

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const refused = (detail: string) => new TetherError('passkey_refused', detail);

/** An admin makes a one-time enrolment link for a person (`tether principal invite bob`). */
export async function invitePrincipal(
  ctx: BrokerContext,
  caller: Caller,
  ref: string,
): Promise<{ url: string; expiresAt: number }> {
  requireRole(caller, 'admin');
  const principal = await resolvePrincipal(ctx.store, caller.tenant.id, ref);
  if (principal.kind !== 'human')
    throw new TetherError(
      'invalid_request',
      `${principal.name} is a ${principal.kind}: passkeys are for people`,
    );
  if (!principal.enabled) throw new TetherError('principal_disabled', `${principal.name} is disabled`);
  // A seat stands for a provider's operator: whoever enrolled a passkey for it would act as them.
  if (principal.home)
    throw new TetherError(
      'seat_restricted',
      `${principal.name} is a provider operator's seat: it has no passkeys here`,
    );
  const token = randomBytes(32).toString('base64url');
  const now = ctx.clock.now();
  const expiresAt = now + PASSKEY_LIMITS.invitationSeconds * 1000;
  await inTransaction(ctx.store, async (tx) => {
    await tx.db
      .insertInto('console_invitations')
      .values({
        token_hash: sha256(token),
        tenant_id: principal.tenantId,
        principal_id: principal.id,
        created_by: caller.principal.id,
        created_at: now,
        expires_at: expiresAt,
        used_at: null,
      })
      .execute();
    await recordAudit(tx, principal.tenantId, now, {
      actor: caller.principal.id,
      action: 'principal.invited',
      target: principal.id,
      outcome: 'success',
      principalId: principal.id,
      details: { expires_at: expiresAt },
    });
  });
  // The secret rides in the fragment: browsers never send it to a server or in a Referer.
  return { url: `${ctx.config.publicUrl}/console/enrol#${token}`, expiresAt };
}

/** The unused, unexpired invitation `token` names, or a refusal that says nothing more. */
async function openInvitation(h: TxHandle | BrokerContext['store'], token: string, now: number) {
  const row = await h.db
    .selectFrom('console_invitations')
    .selectAll()
    .where('token_hash', '=', sha256(typeof token === 'string' ? token : ''))
    .executeTakeFirst();
  if (!row || row.used_at !== null || now >= row.expires_at)
    throw refused('this enrolment link is not valid (used, expired or unknown): ask an admin for a new one');
  return row;
}

/** Creation options for the invited person's new passkey (a discoverable credential, user verified). */
export async function enrolmentOptions(
  ctx: BrokerContext,
  token: string,
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const invitation = await openInvitation(ctx.store, token, ctx.clock.now());
  const principal = await findPrincipal(ctx.store, invitation.tenant_id, invitation.principal_id);
  if (!principal?.enabled) throw refused('this enrolment link is not valid (used, expired or unknown)');
  const existing = await ctx.store.db
    .selectFrom('passkeys')
    .select(['credential_id'])
    .where('principal_id', '=', principal.id)
    .execute();
  const { rpID } = relyingParty(ctx);
  const options = await generateRegistrationOptions({
    rpName: 'Tether',
    rpID,
    userName: principal.name,
    userID: new TextEncoder().encode(principal.id),
    attestationType: 'none',
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
    excludeCredentials: existing.map((p) => ({ id: p.credential_id })),
    timeout: PASSKEY_LIMITS.challengeSeconds * 1000,
  });
  await rememberChallenge(ctx, options.challenge, 'enrol', {
    tenantId: principal.tenantId,
    id: principal.id,
  });
  return options;
}

/** Verifies the new passkey and keeps it; the link is spent in the same transaction. */
export async function completeEnrolment(
  ctx: BrokerContext,
  token: string,
  response: RegistrationResponseJSON,
): Promise<{ principal: string }> {
  const { rpID, origin } = relyingParty(ctx);
  return inTransaction(ctx.store, async (tx) => {
    const now = ctx.clock.now();
    const invitation = await openInvitation(tx, token, now);
    const count = await tx.db
      .selectFrom('passkeys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('principal_id', '=', invitation.principal_id)
      .executeTakeFirst();
    if (Number(count?.n ?? 0) >= PASSKEY_LIMITS.passkeysPerPrincipal)
      throw refused(`a person has at most ${PASSKEY_LIMITS.passkeysPerPrincipal} passkeys`);
    let verified: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
    try {
      verified = await verifyRegistrationResponse({
        response,
        expectedChallenge: (challenge) => takeChallenge(tx, challenge, 'enrol', now, invitation.principal_id),
        expectedOrigin: origin,
        expectedRPID: rpID,
        requireUserVerification: true,
      });
    } catch (err) {
      throw refused(`the passkey could not be verified: ${(err as Error).message.slice(0, 200)}`);
    }
    if (!verified.verified || !verified.registrationInfo) throw refused('the passkey could not be verified');
    const { credential } = verified.registrationInfo;
    const binding = {
      tenant: invitation.tenant_id,
      principal: invitation.principal_id,
      credential: credential.id,
    };
    await tx.db
      .insertInto('passkeys')
      .values({
        credential_id: credential.id,
        tenant_id: invitation.tenant_id,
        principal_id: invitation.principal_id,
        sealed_public_key: await sealSecret(
          ctx.kek,
          Buffer.from(credential.publicKey).toString('base64url'),
          binding,
        ),
        counter: credential.counter,
        transports: JSON.stringify(credential.transports ?? []),
        created_at: now,
        last_used_at: null,
      })
      .execute();
    await tx.db
      .updateTable('console_invitations')
      .set({ used_at: now })
      .where('token_hash', '=', invitation.token_hash)
      .execute();
    await recordAudit(tx, invitation.tenant_id, now, {
      actor: invitation.principal_id,
      action: 'principal.passkey_enrolled',
      target: invitation.principal_id,
      outcome: 'success',
      principalId: invitation.principal_id,
      details: { credential: credential.id, invited_by: invitation.created_by },
    });
    return { principal: invitation.principal_id };
  });
}

/** Request options for signing in: any of the person's discoverable passkeys, user verified. */
export async function signInOptions(ctx: BrokerContext): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const { rpID } = relyingParty(ctx);
  const options = await generateAuthenticationOptions({
    rpID,
    userVerification: 'required',
    timeout: PASSKEY_LIMITS.challengeSeconds * 1000,
  });
  await rememberChallenge(ctx, options.challenge, 'sign_in', null);
  return options;
}

/**
 * Verifies a passkey assertion and starts a console session: the passkey must be a stored one
 * whose seal opens for its principal, the challenge the broker's and unused, the signature
 * counter moving forward, the principal enabled.
 */
export async function completeSignIn(
  ctx: BrokerContext,
  response: AuthenticationResponseJSON,
): Promise<{ cookie: string; csrf: string; principal: string; tenant: string }> {
  const outcome = await inTransaction(ctx.store, async (tx) => {
    const now = ctx.clock.now();
    const checked = await verifyStoredPasskey(ctx, tx, response, 'sign_in', now);
    if ('refused' in checked) return checked;
    const { row, newCounter } = checked;
    const principal = await findPrincipal(tx, row.tenant_id, row.principal_id);
    if (!principal?.enabled)
      return {
        refused: 'this person is disabled',
        tenant: row.tenant_id,
        principal: row.principal_id,
      } as const;
    await tx.db
      .updateTable('passkeys')
      .set({ counter: newCounter, last_used_at: now })
      .where('credential_id', '=', row.credential_id)
      .execute();
    const session = await startConsoleSession(tx, {
      tenantId: row.tenant_id,
      principalId: row.principal_id,
      passkeyId: row.credential_id,
      now,
    });
    await recordAudit(tx, row.tenant_id, now, {
      actor: row.principal_id,
      action: 'auth.console_signed_in',
      target: row.principal_id,
      outcome: 'success',
      principalId: row.principal_id,
      details: { passkey: row.credential_id, expires_at: session.expiresAt },
    });
    return { session, principal: principal.name, tenant: row.tenant_id } as const;
  });
  if ('refused' in outcome) {
    if (outcome.tenant !== undefined && outcome.principal !== undefined)
      await recordRefusal(ctx, outcome.tenant, {
        actor: outcome.principal,
        action: 'auth.console_signed_in',
        target: outcome.principal,
        principalId: outcome.principal,
        details: { reason: outcome.refused },
      });
    throw refused(String(outcome.refused));
  }
  return { ...outcome.session, principal: outcome.principal, tenant: outcome.tenant };
}
