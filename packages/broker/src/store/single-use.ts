import { inTransaction, type StoreHandle } from './database.js';
import type { Tables } from './schema.js';

/** The tables that remember single-use ids (DPoP proofs, client assertions, key proofs). */
export type SingleUseTable = 'dpop_jtis' | 'client_assertion_jtis';
type Row<T extends SingleUseTable> = Tables[T];

interface Pending {
  table: SingleUseTable;
  row: Row<SingleUseTable>;
  settle: (first: boolean) => void;
  fail: (err: unknown) => void;
}

/** Remembered ids written per transaction, at most. */
const MAX_BATCH = 256;

/**
 * Remembers single-use ids (a proof's `jti`) in the store, durably, before the caller goes on:
 * `remember` answers true the first time an id is seen across every replica, false for a
 * replay. Ids arriving together are written in one transaction: a thousand PEPs connecting at
 * once would otherwise cost a thousand fsyncs, one after another on SQLite's single writer.
 * Nothing is answered before its transaction has committed; if it fails, every caller in it
 * gets the error (a store fault: 503), and nothing is taken as seen.
 */
export class SingleUseIds {
  #queue: Pending[] = [];
  #scheduled = false;

  constructor(private readonly store: StoreHandle) {}

  remember<T extends SingleUseTable>(table: T, row: Row<T>): Promise<boolean> {
    return new Promise<boolean>((settle, fail) => {
      this.#queue.push({ table, row, settle, fail });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // After the I/O callbacks of this turn of the loop: the requests that arrived together.
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    const batch = this.#queue.splice(0, MAX_BATCH);
    if (this.#queue.length > 0) setImmediate(() => void this.#flush());
    else this.#scheduled = false;
    let firsts: boolean[];
    try {
      // Through inTransaction: on SQLite the batch joins the group commit of other units of work.
      firsts = await inTransaction(this.store, async (tx) => {
        const answers: boolean[] = [];
        for (const item of batch) {
          const result = await tx.db
            .insertInto(item.table)
            .values(item.row as never)
            .onConflict((oc) => oc.doNothing())
            .executeTakeFirst();
          answers.push(Number(result.numInsertedOrUpdatedRows ?? 0) === 1);
        }
        return answers;
      });
    } catch (err) {
      for (const item of batch) item.fail(err);
      return;
    }
    for (const [i, item] of batch.entries()) item.settle(firsts[i]!);
  }
}

const perStore = new WeakMap<object, SingleUseIds>();

/** The store's one {@link SingleUseIds} (per Kysely instance: one batch writer per connection pool). */
export function singleUseIds(store: StoreHandle): SingleUseIds {
  let ids = perStore.get(store.db);
  if (ids === undefined) {
    ids = new SingleUseIds(store);
    perStore.set(store.db, ids);
  }
  return ids;
}
