import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import { appliedMigrations } from './migrate.js';
import { KNOWN_MIGRATIONS } from './migrations/index.js';
import type { Tables } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';

/** The database handle plus the one fact repositories need about it: its dialect. */
export interface StoreHandle {
  readonly db: Kysely<Tables>;
  readonly dialect: Dialect;
  /** PostgreSQL only: the schema Tether's tables live in. */
  readonly pgSchema?: string;
}

/** A handle inside an open transaction. Locking queries take this type, never a plain handle. */
export interface TxHandle extends StoreHandle {
  readonly db: Transaction<Tables>;
  /** Run `effect` after the transaction commits (never if it rolls back). */
  onCommit(effect: () => void | Promise<void>): void;
}

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
}

export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//.test(location);
}

/** Opens the store. Does not migrate: call {@link migrateToLatest}. */
export function openStore(options: StoreOptions): Store {
  return isPostgresUrl(options.location) ? openPostgres(options) : openSqlite(options.location);
}

function openSqlite(path: string): Store {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const database = new SqliteDatabase(path);
  // Durability first: WAL with a full fsync at every commit.
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = FULL');
  database.pragma('foreign_keys = ON');
  database.pragma('busy_timeout = 5000');
  const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database }) });
  return { db, dialect: 'sqlite', close: () => db.destroy() };
}

const INT8_OID = 20;

function openPostgres(options: StoreOptions): Store {
  const inUrl = schemaInUrl(options.location);
  // pg lets the URL's `options` win over ours: two different schemas cannot both be meant.
  if (options.pgSchema !== undefined && inUrl !== undefined && inUrl !== options.pgSchema)
    throw new Error(`the database URL selects schema ${inUrl}, not ${options.pgSchema}`);
  const pgSchema = options.pgSchema ?? inUrl;
  const settings: pg.ClientConfig = {
    connectionString: options.location,
    ...(pgSchema ? { options: `-c search_path=${quoteIdentifier(pgSchema)}` } : {}),
  };
  const pool = new pg.Pool({
    ...settings,
    max: options.poolSize ?? 10,
    // bigint columns hold epoch milliseconds and counters, all well inside 2^53.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client that loses its connection must not crash the broker.
  pool.on('error', () => undefined);
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
 */
export async function inTransaction<T>(
  store: StoreHandle,
  work: (tx: TxHandle) => Promise<T>,
  onEffectError: (err: unknown) => void = () => undefined,
): Promise<T> {
  const effects: (() => void | Promise<void>)[] = [];
  const result = await store.db.transaction().execute((trx) =>
    work({
      db: trx,
      dialect: store.dialect,
      ...(store.pgSchema === undefined ? {} : { pgSchema: store.pgSchema }),
      onCommit: (effect) => effects.push(effect),
    }),
  );
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

/** Store reachable and schema current: what `/readyz` reports. */
export async function storeIsReady(store: StoreHandle): Promise<boolean> {
  try {
    await sql`select 1`.execute(store.db);
    return await schemaIsCurrent(store);
  } catch {
    return false;
  }
}
