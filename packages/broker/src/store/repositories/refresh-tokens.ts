import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { RefreshTokenRow } from '../schema.js';

export type RefreshTokenState = 'active' | 'spent' | 'revoked';

export interface StoredRefreshToken {
  tokenHash: string;
  tenantId: string;
  sessionId: string;
  state: RefreshTokenState;
  createdAt: number;
  idleExpiresAt: number;
  usedAt: number | null;
}

function toStored(row: RefreshTokenRow): StoredRefreshToken {
  return {
    tokenHash: row.token_hash,
    tenantId: row.tenant_id,
    sessionId: row.session_id,
    state: row.state as RefreshTokenState,
    createdAt: row.created_at,
    idleExpiresAt: row.idle_expires_at,
    usedAt: row.used_at,
  };
}

export async function insertRefreshToken(tx: TxHandle, t: StoredRefreshToken): Promise<void> {
  await tx.db
    .insertInto('refresh_tokens')
    .values({
      token_hash: t.tokenHash,
      tenant_id: t.tenantId,
      session_id: t.sessionId,
      state: t.state,
      created_at: t.createdAt,
      idle_expires_at: t.idleExpiresAt,
      used_at: t.usedAt,
    })
    .execute();
}

/** Looked up by hash: the presented token is hashed first, so no token is ever compared or stored in clear. */
export async function lockRefreshToken(
  tx: TxHandle,
  tokenHash: string,
): Promise<StoredRefreshToken | undefined> {
  const row = await forUpdate(
    tx,
    tx.db.selectFrom('refresh_tokens').selectAll().where('token_hash', '=', tokenHash),
  ).executeTakeFirst();
  return row && toStored(row);
}

export async function findRefreshToken(
  h: StoreHandle,
  tokenHash: string,
): Promise<StoredRefreshToken | undefined> {
  const row = await h.db
    .selectFrom('refresh_tokens')
    .selectAll()
    .where('token_hash', '=', tokenHash)
    .executeTakeFirst();
  return row && toStored(row);
}

/** Marks a token spent, only if still active (false if a concurrent refresh spent it first). */
export async function spendRefreshToken(tx: TxHandle, tokenHash: string, at: number): Promise<boolean> {
  const result = await tx.db
    .updateTable('refresh_tokens')
    .set({ state: 'spent', used_at: at })
    .where('token_hash', '=', tokenHash)
    .where('state', '=', 'active')
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * After the session's hard expiry moved later: each active refresh token's idle expiry, which
 * was capped by the old hard expiry, becomes its issue time plus `idleMs`, capped by the new
 * one. Never shortens a token.
 */
export async function recapRefreshIdleExpiry(
  tx: TxHandle,
  sessionId: string,
  idleMs: number,
  hardExpiresAt: number,
): Promise<void> {
  const active = await tx.db
    .selectFrom('refresh_tokens')
    .select(['token_hash', 'created_at', 'idle_expires_at'])
    .where('session_id', '=', sessionId)
    .where('state', '=', 'active')
    .execute();
  for (const token of active) {
    const idleExpiresAt = Math.min(token.created_at + idleMs, hardExpiresAt);
    if (idleExpiresAt <= token.idle_expires_at) continue;
    await tx.db
      .updateTable('refresh_tokens')
      .set({ idle_expires_at: idleExpiresAt })
      .where('token_hash', '=', token.token_hash)
      .where('state', '=', 'active')
      .execute();
  }
}

export async function revokeSessionRefreshTokens(tx: TxHandle, sessionId: string): Promise<void> {
  await tx.db
    .updateTable('refresh_tokens')
    .set({ state: 'revoked' })
    .where('session_id', '=', sessionId)
    .where('state', '=', 'active')
    .execute();
}
