import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { generateAuthenticationOptions } from '@simplewebauthn/server';
import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { markVerified } from '../auth/console-session.js';
import { recordRefusal } from '../core/audit-refusal.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { inTransaction } from '../store/database.js';
import {
  CHALLENGE_SECONDS,
  relyingParty,
  rememberChallenge,
  verifyStoredPasskey,
} from './webauthn-ceremony.js';

/**
 * A signed-in person verifies themselves again with one of their own passkeys (an approval of a
 * privilege with `approval.fresh_verification` asks for it). The options name only their
 * passkeys; the assertion must come from one of them; the console session records when.
 */
export async function verificationOptions(
  ctx: BrokerContext,
  caller: Caller,
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const own = await ctx.store.db
    .selectFrom('passkeys')
    .select(['credential_id'])
    .where('principal_id', '=', caller.principal.id)
    .execute();
  if (own.length === 0)
    throw new TetherError('passkey_refused', 'you have no passkey here: ask an admin for an enrolment link');
  const options = await generateAuthenticationOptions({
    rpID: relyingParty(ctx).rpID,
    userVerification: 'required',
    allowCredentials: own.map((p) => ({ id: p.credential_id })),
    timeout: CHALLENGE_SECONDS * 1000,
  });
  await rememberChallenge(ctx, options.challenge, 'verify', {
    tenantId: caller.tenant.id,
    id: caller.principal.id,
  });
  return options;
}

/** Checks the assertion against the caller's own passkeys and records the verification. */
export async function completeVerification(
  ctx: BrokerContext,
  caller: Caller,
  cookie: string,
  response: AuthenticationResponseJSON,
): Promise<{ verifiedAt: number }> {
  const outcome = await inTransaction(ctx.store, async (tx) => {
    const now = ctx.clock.now();
    const checked = await verifyStoredPasskey(ctx, tx, response, 'verify', now, caller.principal.id);
    if ('refused' in checked) return checked;
    await tx.db
      .updateTable('passkeys')
      .set({ counter: checked.newCounter, last_used_at: now })
      .where('credential_id', '=', checked.row.credential_id)
      .execute();
    await recordAudit(tx, caller.tenant.id, now, {
      actor: caller.principal.id,
      action: 'auth.console_verified',
      target: caller.principal.id,
      outcome: 'success',
      principalId: caller.principal.id,
      details: { passkey: checked.row.credential_id },
    });
    return { verifiedAt: now };
  });
  if ('refused' in outcome) {
    await recordRefusal(ctx, caller.tenant.id, {
      actor: caller.principal.id,
      action: 'auth.console_verified',
      target: caller.principal.id,
      principalId: caller.principal.id,
      details: { reason: outcome.refused },
    });
    throw new TetherError('passkey_refused', outcome.refused);
  }
  await markVerified(ctx, cookie, outcome.verifiedAt);
  return outcome;
}
