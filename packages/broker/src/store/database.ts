import { randomUUID } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import {
  Kysely,
  PostgresDialect,
  SqliteDialect,
  type SqliteDatabase as SqliteDialectDatabase,
  sql,
} from 'kysely';
import pg from 'pg';
import { enableGroupCommit, groupCommitOf } from './group-commit.js';
import type { StoreHandle, TxHandle } from './handle.js';
import { appliedMigrations } from './migrate.js';
import { KNOWN_MIGRATIONS } from './migrations/index.js';
import type { Tables } from './schema.js';

export type { Dialect, StoreHandle, TxHandle } from './handle.js';

export interface Store extends StoreHandle {
  close(): Promise<void>;
  /**
   * PostgreSQL only: a new, unconnected client with the pool's settings but outside the pool,
   * for a connection held open for a long time (LISTEN). The caller connects and ends it.
   */
  dedicatedClient?(): pg.Client;
}

export interface StoreOptions {
  /**
   * `postgres://…` for PostgreSQL; otherwise a SQLite file path or `:memory:`. A PostgreSQL URL
   * may choose the schema as libpq does, `?options=-c%20search_path%3D<schema>`.
   */
  location: string;
  /** PostgreSQL only: schema to use (tests give each suite its own); overrides the URL's. */
  pgSchema?: string;
  /** PostgreSQL only: pool size. */
  poolSize?: number;
  /**
   * Longest a statement may run (PostgreSQL `statement_timeout`, plus a client-side read
   * timeout a little longer for a server that stops answering) and, on SQLite, how long a
   * writer waits for the lock (`busy_timeout`). Default {@link STORE_TIMEOUT_DEFAULTS}.
   */
  statementTimeoutMs?: number;
  /** PostgreSQL only: longest wait for a pooled connection (connect or acquire). */
  connectTimeoutMs?: number;
  /**
   * Told of every connection error outside a query's own answer: an idle pooled client, a
   * checked-out client whose server went away, a failed connect. Without a listener such an
   * error would crash the process; the query that was running fails on its own.
   */
  onConnectionError?: (err: Error) => void;
}

/** Store timeouts when none are given: long enough for real work, short enough that a hung store is noticed. */
export const STORE_TIMEOUT_DEFAULTS = { statementTimeoutMs: 10_000, connectTimeoutMs: 5_000 } as const;

export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//.test(location);
}

/** Opens the store. Does not migrate: call {@link migrateToLatest}. */
export function openStore(options: StoreOptions): Store {
  return isPostgresUrl(options.location) ? openPostgres(options) : openSqlite(options.location, options);
}

function openSqlite(path: string, options: Pick<StoreOptions, 'statementTimeoutMs'> = {}): Store {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Created owner-only before SQLite opens it: SQLite gives -wal and -shm the database's mode.
    closeSync(openSync(path, 'a', 0o600));
  }
  const database = new SqliteDatabase(path);
  // Durability first: WAL with a full fsync at every commit.
  database.pragma('journal_mode = WAL');
  if (path !== ':memory:')
    for (const companion of [`${path}-wal`, `${path}-shm`])
      if (existsSync(companion)) chmodSync(companion, 0o600);
  database.pragma('synchronous = FULL');
  database.pragma('foreign_keys = ON');
  const busyTimeout = Math.trunc(options.statementTimeoutMs ?? STORE_TIMEOUT_DEFAULTS.statementTimeoutMs);
  database.pragma(`busy_timeout = ${busyTimeout}`);
  const db = new Kysely<Tables>({ dialect: new SelfRollingBackSqliteDialect(database) });
  enableGroupCommit(db, database);
  return { db, dialect: 'sqlite', close: () => db.destroy() };
}

/** Prepared statements kept per connection: Kysely compiles the same few hundred queries. */
const STATEMENT_CACHE_SIZE = 512;

/**
 * The database as Kysely's SQLite driver sees it, preparing each distinct SQL text once:
 * preparing is most of what a small query costs (a third of the broker's store time when a
 * thousand PEPs connect at once). Safe because the driver runs one query at a time on the
 * connection (its mutex), so a cached statement is never in use twice.
 */
function withStatementCache(database: SqliteDatabase.Database): SqliteDialectDatabase {
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => database.close(),
    prepare(sql: string) {
      let statement = statements.get(sql);
      if (statement === undefined) {
        statement = database.prepare(sql);
        if (statements.size >= STATEMENT_CACHE_SIZE)
          statements.delete(statements.keys().next().value as string);
        statements.set(sql, statement);
      }
      return statement;
    },
  };
}

/**
 * SQLite rolls a transaction back by itself when a statement or the COMMIT fails with
 * SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM or SQLITE_BUSY. Kysely then sends its own ROLLBACK,
 * which fails ("cannot rollback - no transaction is active") and is what it throws, hiding the
 * cause: a full disk at COMMIT became a 500 instead of a 503 `store_unavailable`. A ROLLBACK
 * when no transaction is open is what was wanted already, so it is skipped and the cause stays.
 */
class SelfRollingBackSqliteDialect extends SqliteDialect {
  constructor(private readonly database: SqliteDatabase.Database) {
    super({ database: withStatementCache(database) });
  }

  override createDriver(): ReturnType<SqliteDialect['createDriver']> {
    const driver = super.createDriver();
    const rollback = driver.rollbackTransaction.bind(driver);
    driver.rollbackTransaction = async (connection) => {
      if (!this.database.inTransaction) return;
      await rollback(connection);
    };
    return driver;
  }
}

const INT8_OID = 20;

function openPostgres(options: StoreOptions): Store {
  const inUrl = schemaInUrl(options.location);
  // pg lets the URL's `options` win over ours: two different schemas cannot both be meant.
  if (options.pgSchema !== undefined && inUrl !== undefined && inUrl !== options.pgSchema)
    throw new Error(`the database URL selects schema ${inUrl}, not ${options.pgSchema}`);
  const pgSchema = options.pgSchema ?? inUrl;
  const statementTimeout = Math.trunc(
    options.statementTimeoutMs ?? STORE_TIMEOUT_DEFAULTS.statementTimeoutMs,
  );
  const settings: pg.ClientConfig = {
    connectionString: options.location,
    ...(pgSchema ? { options: `-c search_path=${quoteIdentifier(pgSchema)}` } : {}),
    connectionTimeoutMillis: options.connectTimeoutMs ?? STORE_TIMEOUT_DEFAULTS.connectTimeoutMs,
    // Names the broker's connections in pg_stat_activity (and which schema they serve).
    application_name: `tether${pgSchema ? `:${pgSchema}` : ''}`.slice(0, 63),
    // A dead peer (failover, cut cable) is found by TCP keepalive, not after the kernel's hours.
    keepAlive: true,
  };
  const onConnectionError = options.onConnectionError ?? (() => undefined);
  const pool = new pg.Pool({
    ...settings,
    // The server stops a statement after this long, and a transaction left idle twice as long;
    // the client gives up a second later still, for a server that answers nothing at all.
    statement_timeout: statementTimeout,
    idle_in_transaction_session_timeout: statementTimeout * 2,
    query_timeout: statementTimeout + 1000,
    max: options.poolSize ?? 10,
    // bigint columns hold epoch milliseconds and counters, all well inside 2^53.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // A client that loses its connection must not crash the broker: node-postgres emits 'error'
  // on the client, and only idle clients have the pool's listener. Every client gets one of its
  // own for its whole life; the query under way fails by itself and the pool discards the client.
  pool.on('error', onConnectionError);
  pool.on('connect', (client) => {
    client.on('error', onConnectionError);
  });
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    dialect: 'postgres',
    pgSchema: pgSchema ?? 'public',
    close: () => db.destroy(),
    dedicatedClient: () => new pg.Client(settings),
  };
}

/**
 * The schema a PostgreSQL URL selects with `options=-c search_path=<schema>[,…]` (the first
 * one: where the tables are created), if any. The store must know it, not only the server:
 * migrations and the revocation channel are named after it.
 */
function schemaInUrl(location: string): string | undefined {
  let options: string | null;
  try {
    options = new URL(location).searchParams.get('options');
  } catch {
    return undefined;
  }
  const match = /(?:^|\s)(?:-c\s*|--)search_path=([^\s,]+)/.exec(options ?? '');
  return match?.[1] === undefined ? undefined : quoteIdentifier(match[1]);
}

function quoteIdentifier(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`invalid schema name: ${name}`);
  return name;
}

export { appliedMigrations, migrateToLatest } from './migrate.js';

/** True when every known migration has been applied and no unknown one has. */
export async function schemaIsCurrent(store: StoreHandle): Promise<boolean> {
  const applied = await appliedMigrations(store);
  return applied.length === KNOWN_MIGRATIONS.length && KNOWN_MIGRATIONS.every((m) => applied.includes(m));
}

/**
 * Runs `work` in one transaction. Effects registered with `onCommit` run after the commit,
 * in order; an effect that fails is reported to `onEffectError` and never undoes the commit.
 * On SQLite, units of work arriving together share one transaction and one commit, each in
 * its own savepoint (see `group-commit.ts`): the outcome for each is as if run alone.
 */
export async function inTransaction<T>(
  store: StoreHandle,
  work: (tx: TxHandle) => Promise<T>,
  onEffectError: (err: unknown) => void = store.effectErrors ?? (() => undefined),
): Promise<T> {
  const group = groupCommitOf(store.db);
  if (group !== undefined) {
    return group.run(
      (tx) =>
        work({
          ...tx,
          dialect: store.dialect,
          ...(store.pgSchema === undefined ? {} : { pgSchema: store.pgSchema }),
        }),
      onEffectError,
    );
  }
  const effects: (() => void | Promise<void>)[] = [];
  let failure: { error: unknown } | undefined;
  let result: T;
  try {
    result = await store.db.transaction().execute(async (trx) => {
      try {
        return await work({
          db: trx,
          dialect: store.dialect,
          ...(store.pgSchema === undefined ? {} : { pgSchema: store.pgSchema }),
          onCommit: (effect) => effects.push(effect),
        });
      } catch (error) {
        failure = { error };
        throw error;
      }
    });
  } catch (err) {
    // SQLite rolls a transaction back by itself on some errors (SQLITE_FULL, SQLITE_IOERR, …):
    // the ROLLBACK that follows then fails and would hide the cause. Report the cause.
    if (failure && err !== failure.error) throw failure.error;
    throw err;
  }
  for (const effect of effects) {
    try {
      await effect();
    } catch (err) {
      onEffectError(err);
    }
  }
  return result;
}

/** Unique or primary-key violation, on either dialect. */
export function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** Why `/readyz` says the store is not ready, or `ready`. */
export type StoreReadiness = 'ready' | 'unreachable' | 'not_writable' | 'schema_not_current' | 'timed_out';

/**
 * Bigger than a SQLite page, so the probe must allocate pages: a full disk (or a size cap)
 * fails it as it would fail a real write, where rewriting a small row in place might not.
 */
const PROBE_PAYLOAD = 'p'.repeat(8192);

/**
 * What `/readyz` reports: the store answers a read, takes a durable write (a row inserted and
 * deleted in one committed transaction), and has the current schema — all within
 * `deadlineMs`, whatever the store does (a hung store is "timed_out", not a hung probe).
 */
export async function storeReadiness(
  store: StoreHandle,
  options: { deadlineMs?: number; now?: () => number } = {},
): Promise<{ readiness: StoreReadiness; cause?: unknown }> {
  // One probe at a time per store: a hung store must not collect a connection per `/readyz` call.
  let probe = probesUnderWay.get(store);
  if (!probe) {
    probe = probeStore(store, options.now ?? Date.now).finally(() => probesUnderWay.delete(store));
    probesUnderWay.set(store, probe);
  }
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<{ readiness: StoreReadiness }>((resolve) => {
    timer = setTimeout(() => resolve({ readiness: 'timed_out' }), options.deadlineMs ?? 750);
  });
  try {
    return await Promise.race([probe, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

const probesUnderWay = new WeakMap<StoreHandle, Promise<{ readiness: StoreReadiness; cause?: unknown }>>();

async function probeStore(
  store: StoreHandle,
  now: () => number,
): Promise<{ readiness: StoreReadiness; cause?: unknown }> {
  try {
    await sql`select 1`.execute(store.db);
    if (!(await schemaIsCurrent(store))) return { readiness: 'schema_not_current' };
  } catch (cause) {
    return { readiness: 'unreachable', cause };
  }
  try {
    const id = `probe-${randomUUID()}`;
    await store.db.transaction().execute(async (trx) => {
      await trx.insertInto('store_probe').values({ id, payload: PROBE_PAYLOAD, at: now() }).execute();
      await trx.deleteFrom('store_probe').where('id', '=', id).execute();
    });
    return { readiness: 'ready' };
  } catch (cause) {
    return { readiness: 'not_writable', cause };
  }
}

/** Store reachable, writable and schema current. */
export async function storeIsReady(store: StoreHandle): Promise<boolean> {
  return (await storeReadiness(store)).readiness === 'ready';
}
