import type { SelectQueryBuilder } from 'kysely';
import type { TxHandle } from './database.js';

/**
 * Row lock for a read that precedes a state transition. PostgreSQL takes `FOR UPDATE`;
 * SQLite has a single writer, and our SQLite transactions are serialised on one connection,
 * so the read is already exclusive there.
 */
export function forUpdate<DB, TB extends keyof DB, O>(
  tx: TxHandle,
  query: SelectQueryBuilder<DB, TB, O>,
): SelectQueryBuilder<DB, TB, O> {
  return tx.dialect === 'postgres' ? query.forUpdate() : query;
}
