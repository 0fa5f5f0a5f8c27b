import { TetherError } from '@tether-broker/protocol';
import { type Kysely, sql } from 'kysely';
import type { StoreHandle } from './handle.js';
import { KNOWN_MIGRATIONS, MIGRATIONS } from './migrations/index.js';

/**
 * Our own migration runner, over the same bookkeeping table Kysely's Migrator uses
 * (`kysely_migration(name, timestamp)`). Kysely's runner discovers that table by introspecting
 * every schema of the database, which fails when another schema is dropped at the same moment
 * (parallel test suites, other tenants of a shared server). This one names exactly one table,
 * takes a lock, and applies each missing migration in its own transaction, in order.
 */
const TABLE = 'kysely_migration';

function tableRef(store: StoreHandle) {
  return sql.table(store.pgSchema ? `${store.pgSchema}.${TABLE}` : TABLE);
}

async function tableExists(db: Kysely<unknown>, store: StoreHandle): Promise<boolean> {
  if (store.dialect === 'postgres') {
    const name = `${store.pgSchema ?? 'public'}.${TABLE}`;
    const { rows } = await sql<{ found: string | null }>`select to_regclass(${name})::text as found`.execute(
      db,
    );
    return rows[0]?.found !== null && rows[0]?.found !== undefined;
  }
  const { rows } = await sql<{
    name: string;
  }>`select name from sqlite_master where type = 'table' and name = ${TABLE}`.execute(db);
  return rows.length > 0;
}

/** Names of the migrations applied to this store, in order. */
export async function appliedMigrations(store: StoreHandle): Promise<string[]> {
  const db = store.db as unknown as Kysely<unknown>;
  if (!(await tableExists(db, store))) return [];
  const { rows } = await sql<{ name: string }>`select name from ${tableRef(store)} order by name`.execute(db);
  return rows.map((r) => r.name);
}

function refuseUnknown(applied: string[]): void {
  const unknown = applied.filter((name) => !KNOWN_MIGRATIONS.includes(name));
  if (unknown.length > 0) {
    throw new TetherError(
      'store_schema_too_new',
      `the store has migrations this build does not know (${unknown.join(', ')}); upgrade Tether`,
    );
  }
}

/**
 * Brings the schema to the newest version this build knows. Refuses, before touching
 * anything, a store that a newer Tether has migrated past what this build understands.
 * Concurrent brokers starting on one PostgreSQL database serialise on an advisory lock.
 */
export async function migrateToLatest(store: StoreHandle): Promise<void> {
  refuseUnknown(await appliedMigrations(store));
  await sql`create table if not exists ${tableRef(store)} (name varchar(255) primary key, timestamp varchar(255) not null)`.execute(
    store.db,
  );
  for (const name of KNOWN_MIGRATIONS) {
    const migration = MIGRATIONS[name];
    if (!migration) continue;
    try {
      await store.db.transaction().execute(async (trx) => {
        if (store.dialect === 'postgres') {
          await sql`select pg_advisory_xact_lock(hashtext(${`tether-migrate:${store.pgSchema ?? 'public'}`}))`.execute(
            trx,
          );
        }
        const done = await sql<{
          name: string;
        }>`select name from ${tableRef(store)} where name = ${name}`.execute(trx);
        if (done.rows.length > 0) return;
        await migration.up(trx as unknown as Kysely<unknown>);
        await sql`insert into ${tableRef(store)} (name, timestamp) values (${name}, ${new Date().toISOString()})`.execute(
          trx,
        );
      });
    } catch (err) {
      throw new TetherError('store_unavailable', `migration ${name} failed`, { cause: err });
    }
  }
}
