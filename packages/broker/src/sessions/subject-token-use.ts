import { createHash } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { OAuthError } from '../auth/oauth-error.js';
import { recordRefusal } from '../core/audit-refusal.js';
import type { BrokerContext } from '../core/context.js';
import type { TxHandle } from '../store/database.js';
import {
  insertSubjectTokenUse,
  type SubjectTokenUse,
  subjectTokenUsed,
} from '../store/repositories/subject-tokens.js';

/** The `invalid_grant` description of a subject token exchanged a second time. */
export const SUBJECT_TOKEN_REUSED =
  'the subject token has already been exchanged for a session: a subject token is single-use, ask its issuer for a new one';

/**
 * What names a subject token for its single use: SHA-256 of (issuer, jti) when it has a `jti`
 * (RFC 7519 §4.1.7: unique per issuer, so a re-encoded or re-signed copy is the same token),
 * else of the whole token. Only the digest is stored, never the token.
 */
export function subjectTokenKey(claims: JWTPayload, token: string): string {
  const name =
    typeof claims.jti === 'string' && claims.jti !== ''
      ? `jti\u0000${String(claims.iss)}\u0000${claims.jti}`
      : `token\u0000${token}`;
  return createHash('sha256').update(name, 'utf8').digest('base64url');
}

/** Refuses (`invalid_grant`) a token that already started a session, before anything is written. */
export async function refuseIfSpent(tx: TxHandle, tokenKey: string): Promise<void> {
  if (await subjectTokenUsed(tx, tokenKey)) throw new OAuthError('invalid_grant', SUBJECT_TOKEN_REUSED);
}

/**
 * Spends the token in the exchange's transaction. A concurrent exchange that spent it first
 * makes this throw `invalid_grant`, which rolls the whole exchange back.
 */
export async function spendSubjectToken(tx: TxHandle, use: SubjectTokenUse): Promise<void> {
  if (!(await insertSubjectTokenUse(tx, use))) throw new OAuthError('invalid_grant', SUBJECT_TOKEN_REUSED);
}

/** A replayed subject token, in the log and the audit trail (the token itself is never written). */
export async function recordReuse(
  ctx: BrokerContext,
  by: {
    tenantId: string;
    federationId: string;
    principalId: string;
    ticket: string | null;
    audit: Record<string, unknown>;
  },
): Promise<void> {
  ctx.logger.warn(
    { federation: by.federationId, principal: by.principalId },
    'token exchange refused: the subject token was already used',
  );
  await recordRefusal(ctx, by.tenantId, {
    actor: by.principalId,
    action: 'auth.token_exchange',
    target: by.federationId,
    ticket: by.ticket,
    principalId: by.principalId,
    details: { ...by.audit, reason: SUBJECT_TOKEN_REUSED },
  });
}
