import type { Kysely, Transaction } from 'kysely';
import type { Tables } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';

/** The database handle plus the one fact repositories need about it: its dialect. */
export interface StoreHandle {
  readonly db: Kysely<Tables>;
  readonly dialect: Dialect;
  /** PostgreSQL only: the schema Tether's tables live in. */
  readonly pgSchema?: string;
  /**
   * Told of an after-commit effect that threw (the commit stands), when the caller of
   * {@link inTransaction} gives no handler of its own. The broker logs and counts them.
   */
  effectErrors?: (err: unknown) => void;
}

/** A handle inside an open transaction. Locking queries take this type, never a plain handle. */
export interface TxHandle extends StoreHandle {
  readonly db: Transaction<Tables>;
  /** Run `effect` after the transaction commits (never if it rolls back). */
  onCommit(effect: () => void | Promise<void>): void;
}
