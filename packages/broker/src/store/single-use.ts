import { inTransaction, type StoreHandle } from './database.js';
import { groupCommitOf } from './group-commit.js';
import type { Tables } from './schema.js';

/** The tables that remember single-use ids (DPoP proofs, client assertions). */
export type SingleUseTable = 'dpop_jtis' | 'client_assertion_jtis';

/**
 * Remembers a single-use id (a proof's `jti`) in the store, durably, before the caller goes on:
 * true the first time the id is seen across every replica, false for a replay (the table's
 * unique key decides). On SQLite the insert goes through {@link inTransaction}, so it joins the
 * group commit of the work arriving with it: a thousand PEPs connecting at once cost a handful
 * of fsyncs, not a thousand. Elsewhere it is one statement, committed by itself.
 */
export async function rememberOnce<T extends SingleUseTable>(
  store: StoreHandle,
  table: T,
  row: Tables[T],
): Promise<boolean> {
  const insert = (h: StoreHandle) =>
    h.db
      .insertInto(table)
      .values(row as never)
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
  const result =
    groupCommitOf(store.db) === undefined ? await insert(store) : await inTransaction(store, insert);
  return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
}
