import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import { describe, inject } from 'vitest';
import {
  type Dialect,
  migrateToLatest,
  openStore,
  type Store,
} from '../../packages/broker/src/store/database.js';

export interface StoreFixture {
  dialect: Dialect;
  /** Opens a fresh, migrated, isolated store (own SQLite file / own PostgreSQL schema). */
  open(): Promise<Store & { location: string; pgSchema?: string }>;
  /** Drops everything `open` created. */
  cleanup(): Promise<void>;
}

/**
 * A store that starts as a copy of the run's migrated template (see global-setup.ts);
 * migrateToLatest on it then finds nothing pending, and would apply a migration added since.
 */
function sqliteFixture(): StoreFixture {
  const dirs: string[] = [];
  const stores: Store[] = [];
  return {
    dialect: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'tether-test-'));
      dirs.push(dir);
      const location = join(dir, 'tether.db');
      copyFileSync(inject('sqliteTemplate'), location);
      chmodSync(location, 0o600);
      const store = openStore({ location });
      stores.push(store);
      await migrateToLatest(store);
      return Object.assign(store, { location });
    },
    async cleanup() {
      for (const s of stores.splice(0)) await s.close().catch(() => undefined);
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}

let pgTemplate: string | undefined;
/** The run's migrated schema as DDL (global-setup.ts), read once per test file. */
function templateSql(): string {
  pgTemplate ??= readFileSync(inject('pgTemplateSql'), 'utf8');
  return pgTemplate;
}

function postgresFixture(url: string): StoreFixture {
  const schemas: string[] = [];
  const stores: Store[] = [];
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  return {
    dialect: 'postgres',
    async open() {
      // The creation time in the name lets a later run drop what an interrupted run left behind,
      // without touching the schemas of a run that is still going.
      const pgSchema = `tether_t_${Date.now().toString(36)}_${randomBytes(6).toString('hex')}`;
      await admin(templateSql().replaceAll('__tether_schema__', pgSchema));
      schemas.push(pgSchema);
      const store = openStore({ location: url, pgSchema, poolSize: 20 });
      stores.push(store);
      await migrateToLatest(store);
      return Object.assign(store, { location: url, pgSchema });
    },
    async cleanup() {
      for (const s of stores.splice(0)) await s.close().catch(() => undefined);
      for (const schema of schemas.splice(0)) await admin(`drop schema if exists ${schema} cascade`);
    },
  };
}

/**
 * Runs the same suite on SQLite and on PostgreSQL. PostgreSQL is skipped (and reported in the
 * run's summary) only when the global setup found it unreachable and it was not required.
 */
export function describeEachStore(name: string, suite: (fixture: StoreFixture) => void): void {
  describe(`${name} [sqlite]`, () => suite(sqliteFixture()));
  const url = inject('pgUrl');
  describe.skipIf(!url)(`${name} [postgres]`, () => suite(postgresFixture(url)));
}

/**
 * The SQLite half of {@link describeEachStore} alone: for a long suite split into one file per
 * store (the other file calls {@link describeOnPostgres}), so the halves can run in parallel.
 */
export function describeOnSqlite(name: string, suite: (fixture: StoreFixture) => void): void {
  describe(`${name} [sqlite]`, () => suite(sqliteFixture()));
}

/**
 * A suite about PostgreSQL alone (several broker processes on one database), skipped like the
 * PostgreSQL half of {@link describeEachStore}: reported in the summary, an error with
 * TETHER_REQUIRE_PG=1.
 */
export function describeOnPostgres(name: string, suite: (fixture: StoreFixture) => void): void {
  const url = inject('pgUrl');
  describe.skipIf(!url)(`${name} [postgres]`, () => suite(postgresFixture(url)));
}

/**
 * The names of a store's own tables (not views). It reads its own schema's catalog alone: a
 * Kysely introspection lists every schema on the server and fails with "schema … does not
 * exist" when another test process drops its schema meanwhile.
 */
export async function storeTableNames(
  store: Pick<Store, 'db' | 'dialect'> & { pgSchema?: string },
): Promise<string[]> {
  const { rows } =
    store.dialect === 'sqlite'
      ? await sql<{
          name: string;
        }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%'`.execute(store.db)
      : await sql<{ name: string }>`select c.relname as name from pg_catalog.pg_class c
          join pg_catalog.pg_namespace n on n.oid = c.relnamespace
          where n.nspname = ${store.pgSchema ?? sql`current_schema()`} and c.relkind in ('r', 'p')`.execute(
          store.db,
        );
  return rows.map((r) => r.name).sort();
}

/**
 * A store's own tables with their column names, sorted: the catalog of its own schema alone,
 * like {@link storeTableNames} (Kysely's introspection reads every schema on the server, and
 * fails when another test process drops one meanwhile).
 */
export async function storeTableColumns(
  store: Pick<Store, 'db' | 'dialect'> & { pgSchema?: string },
): Promise<Map<string, string[]>> {
  const { rows } =
    store.dialect === 'sqlite'
      ? await sql<{ table: string; column: string }>`select m.name as "table", p.name as "column"
          from sqlite_master m join pragma_table_info(m.name) p
          where m.type = 'table' and m.name not like 'sqlite_%'`.execute(store.db)
      : await sql<{ table: string; column: string }>`select c.table_name as "table", c.column_name as "column"
          from information_schema.columns c
          join pg_catalog.pg_class k on k.relname = c.table_name
          join pg_catalog.pg_namespace n on n.oid = k.relnamespace and n.nspname = c.table_schema
          where c.table_schema = ${store.pgSchema ?? sql`current_schema()`} and k.relkind in ('r', 'p')`.execute(
          store.db,
        );
  const tables = new Map<string, string[]>();
  for (const { table, column } of rows) tables.set(table, [...(tables.get(table) ?? []), column]);
  for (const columns of tables.values()) columns.sort();
  return tables;
}
