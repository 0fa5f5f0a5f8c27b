import type SqliteDatabase from 'better-sqlite3';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { Tables } from './schema.js';

/** The handle a unit of work gets: the shared transaction, and where its after-commit effects go. */
export interface GroupedTx {
  db: Transaction<Tables>;
  onCommit(effect: () => void | Promise<void>): void;
}

interface Job {
  work: (tx: GroupedTx) => Promise<unknown>;
  effects: (() => void | Promise<void>)[];
  onEffectError: (err: unknown) => void;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  outcome?: { value: unknown } | { error: unknown };
}

/** Units of work committed together, at most. */
const MAX_GROUP = 64;

/**
 * Longest a group waits for units announced but not yet submitted (see
 * {@link SqliteGroupCommit.announce}): a bound on the latency it adds, well under one fsync.
 */
export const ANNOUNCED_WAIT_MS = 2;

/**
 * Group commit for the embedded store. SQLite has one writer and makes every commit durable
 * with an fsync; when a thousand PEPs connect at once, their acks and token audits queue behind
 * a thousand fsyncs on the broker's only thread. Units of work that arrive together run one
 * after another in one transaction — exactly the serial order the single writer imposes
 * anyway — each inside its own savepoint, and commit once. A unit that throws is rolled back
 * to its savepoint and fails alone; nothing is answered before the commit; a failed commit
 * fails every unit of the group. Effects run after the commit, unit by unit, in order.
 */
export class SqliteGroupCommit {
  #queue: Job[] = [];
  #scheduled = false;
  /** Units announced and not yet submitted nor withdrawn. */
  #announced = 0;
  /** Set while a group waits for announced units, bounded by {@link ANNOUNCED_WAIT_MS}. */
  #holding: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Kysely<Tables>,
    private readonly database: SqliteDatabase.Database,
  ) {}

  run<T>(work: (tx: GroupedTx) => Promise<T>, onEffectError: (err: unknown) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
        work,
        effects: [],
        onEffectError,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // After the I/O callbacks of this turn of the loop: the requests that arrived together.
        setImmediate(() => this.#flushWhenReady());
      }
    });
  }

  /**
   * Announces a unit of work on its way: a request whose signatures are being verified off
   * the main thread, its transaction to follow. A group about to commit waits for announced
   * units (up to {@link ANNOUNCED_WAIT_MS}) so that they share its fsync instead of each
   * paying the next one — the fsync blocks the broker's only thread. Answers the withdrawal,
   * to call when the unit is submitted or will not come (idempotent).
   */
  announce(): () => void {
    this.#announced++;
    let withdrawn = false;
    return () => {
      if (withdrawn) return;
      withdrawn = true;
      this.#announced--;
      if (this.#announced === 0 && this.#holding !== undefined) {
        clearTimeout(this.#holding);
        this.#holding = undefined;
        // Its unit is submitted in the same turn, right after: let it join the queue first.
        setImmediate(() => void this.#flush());
      }
    };
  }

  #flushWhenReady(): void {
    if (this.#announced === 0) {
      void this.#flush();
      return;
    }
    this.#holding = setTimeout(() => {
      this.#holding = undefined;
      void this.#flush();
    }, ANNOUNCED_WAIT_MS);
  }

  async #flush(): Promise<void> {
    const group = this.#queue.splice(0, MAX_GROUP);
    if (group.length === 0) {
      this.#scheduled = false;
      return;
    }
    let committed = true;
    let failure: unknown;
    try {
      await this.db.transaction().execute(async (trx) => {
        for (const [i, job] of group.entries()) await this.#runOne(trx, job, i, group.length === 1);
      });
    } catch (err) {
      committed = false;
      failure = err;
    }
    // The next group starts once this one is settled: its transaction needs the connection.
    if (this.#queue.length > 0) setImmediate(() => this.#flushWhenReady());
    else this.#scheduled = false;
    for (const job of group) {
      const outcome = job.outcome;
      if (!committed) {
        // A unit's own error explains it best; otherwise the commit's (a full disk: 503).
        job.reject(outcome && 'error' in outcome ? outcome.error : failure);
      } else if (outcome === undefined || 'error' in outcome) {
        job.reject(outcome?.error ?? failure);
      } else {
        for (const effect of job.effects) {
          try {
            await effect();
          } catch (err) {
            job.onEffectError(err);
          }
        }
        job.resolve(outcome.value);
      }
    }
  }

  async #runOne(trx: Transaction<Tables>, job: Job, i: number, alone: boolean): Promise<void> {
    const savepoint = sql.raw(`tether_unit_${i}`);
    if (!alone) await sql`savepoint ${savepoint}`.execute(trx);
    try {
      job.outcome = { value: await job.work({ db: trx, onCommit: (effect) => job.effects.push(effect) }) };
      if (!alone) await sql`release savepoint ${savepoint}`.execute(trx);
    } catch (error) {
      job.outcome = { error };
      job.effects.length = 0;
      // Alone, or SQLite already rolled the whole transaction back (SQLITE_FULL, IOERR…):
      // the transaction fails, and with it the group.
      if (alone || !this.database.inTransaction) throw error;
      await sql`rollback to savepoint ${savepoint}`.execute(trx);
      await sql`release savepoint ${savepoint}`.execute(trx);
    }
  }
}

const groups = new WeakMap<object, SqliteGroupCommit>();

/** Makes `inTransaction` group the commits of units of work on this SQLite store. */
export function enableGroupCommit(db: Kysely<Tables>, database: SqliteDatabase.Database): void {
  groups.set(db, new SqliteGroupCommit(db, database));
}

/** The group commit of a top-level SQLite store handle, if it has one. */
export function groupCommitOf(db: object): SqliteGroupCommit | undefined {
  return groups.get(db);
}

const nothingToWithdraw = () => undefined;

/**
 * Announces a unit of work to the store's group commit, if it has one (see
 * {@link SqliteGroupCommit.announce}); answers its withdrawal, a no-op elsewhere.
 */
export function announceUnit(db: object): () => void {
  return groups.get(db)?.announce() ?? nothingToWithdraw;
}
