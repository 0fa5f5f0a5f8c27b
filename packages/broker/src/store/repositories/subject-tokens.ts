import type { StoreHandle, TxHandle } from '../database.js';

export interface SubjectTokenUse {
  /** SHA-256 digest naming the token (see `subjectTokenKey`), never the token itself. */
  tokenKey: string;
  tenantId: string;
  federationId: string;
  requestId: string;
  usedAt: number;
  /** Epoch ms after which the token could not be accepted anyway. */
  expiresAt: number;
}

/**
 * Remembers that a subject token started a session, in the exchange's own transaction.
 * Answers `false`, writing nothing, when the token was used before (a replay). On PostgreSQL a
 * concurrent exchange of the same token waits on the key until the first commits, then sees it.
 */
export async function insertSubjectTokenUse(tx: TxHandle, use: SubjectTokenUse): Promise<boolean> {
  const result = await tx.db
    .insertInto('subject_token_uses')
    .values({
      token_key: use.tokenKey,
      tenant_id: use.tenantId,
      federation_id: use.federationId,
      request_id: use.requestId,
      used_at: use.usedAt,
      expires_at: use.expiresAt,
    })
    .onConflict((oc) => oc.column('token_key').doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
}

/** Forgets tokens that have expired: they would be refused as expired anyway. */
export async function pruneSubjectTokenUses(h: StoreHandle, now: number): Promise<number> {
  const result = await h.db.deleteFrom('subject_token_uses').where('expires_at', '<', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Whether a subject token already started a session (read in the exchange's transaction). */
export async function subjectTokenUsed(tx: TxHandle, tokenKey: string): Promise<boolean> {
  const row = await tx.db
    .selectFrom('subject_token_uses')
    .select('token_key')
    .where('token_key', '=', tokenKey)
    .executeTakeFirst();
  return row !== undefined;
}
