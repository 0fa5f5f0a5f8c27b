import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTetherError, type TetherError } from '@tether-broker/protocol';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, expect, inject, it } from 'vitest';
import {
  appliedMigrations,
  migrateToLatest,
  openStore,
  type Store,
  type StoreHandle,
  schemaIsCurrent,
  storeIsReady,
} from '../../packages/broker/src/store/database.js';
import { KNOWN_MIGRATIONS } from '../../packages/broker/src/store/migrations/index.js';
import { insertTenant } from '../../packages/broker/src/store/repositories/tenants.js';
import { describeEachStore, type StoreFixture, storeTableColumns } from '../support/stores.js';

/**
 * The tables and columns that store/schema.ts declares, read from its source: the row types are
 * the contract the repositories are written against, so the real schema must match them exactly.
 */
function declaredSchema(): Map<string, string[]> {
  const source = readFileSync(
    new URL('../../packages/broker/src/store/schema.ts', import.meta.url),
    'utf8',
  ).replace(/\/\/.*$/gm, '');
  const interfaces = new Map<string, string[]>();
  for (const m of source.matchAll(/export interface (\w+) \{([^}]*)\}/g)) {
    interfaces.set(
      m[1]!,
      [...m[2]!.matchAll(/^\s*(\w+)\??:/gm)].map((f) => f[1]!),
    );
  }
  const tables = new Map<string, string[]>();
  // Read within `Tables` alone: a table may share its name with another table's column.
  const tablesBody = /export interface Tables \{([^}]*)\}/.exec(source)?.[1] ?? '';
  for (const [table, rowType] of (interfaces.get('Tables') ?? []).map((t) => {
    const line = new RegExp(`^\\s*${t}: (\\w+);`, 'm').exec(tablesBody);
    return [t, line?.[1] ?? ''] as const;
  })) {
    const columns = interfaces.get(rowType);
    if (!columns) throw new Error(`schema.ts: no row interface ${rowType} for table ${table}`);
    tables.set(table, columns);
  }
  return tables;
}

const DECLARED = declaredSchema();

function tablesIn(store: StoreHandle): Promise<Map<string, string[]>> {
  return storeTableColumns(store);
}

async function refusal(p: Promise<unknown>): Promise<TetherError> {
  try {
    await p;
  } catch (err) {
    if (isTetherError(err)) return err;
    throw err;
  }
  throw new Error('expected a TetherError');
}

/** Stores that have never been migrated, on the fixture's dialect; the fixture only hands out migrated ones. */
function emptyStores(fixture: StoreFixture) {
  const opened: Store[] = [];
  const dirs: string[] = [];
  const schemas: string[] = [];
  const pgUrl = inject('pgUrl');
  const admin = async (text: string) => {
    const client = new pg.Client({ connectionString: pgUrl });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  };
  return {
    async open(): Promise<Store> {
      let store: Store;
      if (fixture.dialect === 'sqlite') {
        const dir = mkdtempSync(join(tmpdir(), 'tether-migrations-'));
        dirs.push(dir);
        store = openStore({ location: join(dir, 'tether.db') });
      } else {
        const schema = `tether_t_${randomBytes(6).toString('hex')}`;
        await admin(`create schema ${schema}`);
        schemas.push(schema);
        store = openStore({ location: pgUrl, pgSchema: schema, poolSize: 4 });
      }
      opened.push(store);
      return store;
    },
    async cleanup() {
      for (const s of opened.splice(0)) await s.close().catch(() => undefined);
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
      for (const s of schemas.splice(0)) await admin(`drop schema if exists ${s} cascade`);
    },
  };
}

/** A migration name from a Tether newer than this build, recorded the way Kysely records its own. */
const FUTURE_MIGRATION = '9999-from-a-newer-tether';

async function recordMigration(store: StoreHandle, name: string): Promise<void> {
  await sql`insert into kysely_migration (name, timestamp) values (${name}, ${new Date().toISOString()})`.execute(
    store.db,
  );
}

describeEachStore('store migrations', (fixture) => {
  const empty = emptyStores(fixture);
  afterAll(async () => {
    await empty.cleanup();
    await fixture.cleanup();
  });

  it('reads the table list from store/schema.ts (the parser works)', () => {
    expect(DECLARED.size).toBeGreaterThanOrEqual(13);
    expect(DECLARED.get('tenants')).toEqual([
      'id',
      'name',
      'display_name',
      'time_zone',
      'created_at',
      'kind',
      'provider_tenant_id',
    ]);
  });

  it('migrates an empty store to the latest schema: every table and column of schema.ts', async () => {
    const store = await empty.open();
    expect(await appliedMigrations(store)).toEqual([]);
    expect(await schemaIsCurrent(store)).toBe(false);
    expect(await storeIsReady(store)).toBe(false);

    await migrateToLatest(store);

    expect(await appliedMigrations(store)).toEqual(KNOWN_MIGRATIONS);
    const actual = await tablesIn(store);
    for (const [table, columns] of DECLARED) {
      expect(actual.get(table), `table ${table}`).toEqual([...columns].sort());
    }
    // Nothing beyond what the row types declare, apart from Kysely's own bookkeeping.
    const extra = [...actual.keys()].filter((t) => !DECLARED.has(t) && !t.startsWith('kysely_migration'));
    expect(extra).toEqual([]);
    expect(await schemaIsCurrent(store)).toBe(true);
    expect(await storeIsReady(store)).toBe(true);
  });

  it('is idempotent: migrating again changes nothing and keeps the data', async () => {
    const store = await fixture.open();
    await insertTenant(store, {
      id: 'ten_0000000000000000000000000a',
      name: 'acme',
      displayName: 'Acme',
      timeZone: 'UTC',
      createdAt: 1,
      kind: 'standalone',
      providerTenantId: null,
    });
    const before = await tablesIn(store);
    const appliedBefore = await appliedMigrations(store);

    await migrateToLatest(store);
    await migrateToLatest(store);

    expect(await tablesIn(store)).toEqual(before);
    expect(await appliedMigrations(store)).toEqual(appliedBefore);
    const tenants = await store.db.selectFrom('tenants').select(['id', 'name']).execute();
    expect(tenants).toEqual([{ id: 'ten_0000000000000000000000000a', name: 'acme' }]);
  });

  it('refuses a store migrated by a newer Tether with store_schema_too_new, and changes nothing', async () => {
    const store = await fixture.open();
    await recordMigration(store, FUTURE_MIGRATION);
    const tables = await tablesIn(store);
    const applied = await appliedMigrations(store);

    const err = await refusal(migrateToLatest(store));
    expect(err.code).toBe('store_schema_too_new');
    expect(err.status).toBe(503);
    expect(err.detail).toContain(FUTURE_MIGRATION);

    expect(await tablesIn(store)).toEqual(tables);
    expect(await appliedMigrations(store)).toEqual(applied);
    expect(await schemaIsCurrent(store)).toBe(false);
    expect(await storeIsReady(store)).toBe(false);
  });

  it('refuses before applying anything, even when this build has migrations the store lacks', async () => {
    // A store whose only recorded migration is unknown: a naive migrator would run 0001 first.
    const store = await empty.open();
    await sql`create table kysely_migration (name varchar(255) not null primary key, timestamp varchar(255) not null)`.execute(
      store.db,
    );
    await recordMigration(store, FUTURE_MIGRATION);

    expect((await refusal(migrateToLatest(store))).code).toBe('store_schema_too_new');

    expect([...(await tablesIn(store)).keys()]).toEqual(['kysely_migration']);
    expect(await appliedMigrations(store)).toEqual([FUTURE_MIGRATION]);
  });

  it('reports a store missing a known migration as neither current nor ready', async () => {
    const store = await fixture.open();
    await sql`delete from kysely_migration where name = ${KNOWN_MIGRATIONS.at(-1)!}`.execute(store.db);
    expect(await schemaIsCurrent(store)).toBe(false);
    expect(await storeIsReady(store)).toBe(false);
  });

  it('reports a closed store as not ready, without throwing', async () => {
    const store = await empty.open();
    await migrateToLatest(store);
    expect(await storeIsReady(store)).toBe(true);
    await store.close();
    expect(await storeIsReady(store)).toBe(false);
  });

  // The pragmas are SQLite's own; registered only in the SQLite suite rather than skipped in the other.
  if (fixture.dialect === 'sqlite')
    it('opens a SQLite file store with WAL, synchronous=FULL and foreign keys on', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'tether-pragmas-'));
      const store = openStore({ location: join(dir, 'nested', 'tether.db') });
      try {
        const journal = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(store.db);
        expect(journal.rows[0]?.journal_mode).toBe('wal');
        const synchronous = await sql<{ synchronous: number }>`pragma synchronous`.execute(store.db);
        expect(synchronous.rows[0]?.synchronous).toBe(2); // 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA
        const foreignKeys = await sql<{ foreign_keys: number }>`pragma foreign_keys`.execute(store.db);
        expect(foreignKeys.rows[0]?.foreign_keys).toBe(1);
      } finally {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
});
