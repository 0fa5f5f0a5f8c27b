import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrateToLatest, openStore } from '../../packages/broker/src/store/database.js';

/**
 * Probes PostgreSQL once for the whole run. With TETHER_REQUIRE_PG=1 (CI) an unreachable
 * server fails the run; otherwise its suites are skipped and the summary says so, and why.
 */
const PG_URL = process.env.TETHER_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

let skipReason: string | undefined;
/** What the run's migrated templates left to clean up. */
let templateDir: string | undefined;
let templateSchema: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  // The console's browser tests load its bundled app: bundle it from the current sources (esbuild,
  // well under a second), so a run from the sources never tests a stale or missing build.
  execFileSync(
    process.execPath,
    [fileURLToPath(new URL('../../packages/broker/scripts/bundle-console.mjs', import.meta.url))],
    {
      stdio: 'inherit',
    },
  );
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    // Schemas left behind by an interrupted earlier run.
    const stale = await client.query<{ nspname: string }>(
      "select nspname from pg_namespace where nspname like 'tether_t_%'",
    );
    // Only schemas older than two hours: a run still going elsewhere on this server keeps its own.
    for (const row of stale.rows) {
      const created = Number.parseInt(row.nspname.split('_')[2] ?? '', 36);
      if (Number.isNaN(created) || Date.now() - created > 2 * 3600_000) {
        await client.query(`drop schema if exists "${row.nspname}" cascade`);
      }
    }
  } catch (err) {
    skipReason = `PostgreSQL at ${PG_URL.replace(/\/\/[^@]*@/, '//')} is not reachable (${(err as Error).message})`;
  } finally {
    await client.end().catch(() => undefined);
  }
  if (skipReason && process.env.TETHER_REQUIRE_PG === '1') {
    throw new Error(`TETHER_REQUIRE_PG=1 but ${skipReason}`);
  }
  project.provide('pgUrl', skipReason ? '' : PG_URL);
  const templates = await migratedTemplates(!skipReason);
  project.provide('sqliteTemplate', templates.sqlite);
  project.provide('pgTemplateSql', templates.pgSql);
}

/**
 * Runs the real migrations once per test run, into a SQLite file and a PostgreSQL schema, so
 * that each store a test opens starts as a copy of them (a file copy; the schema's DDL replayed
 * in one statement) instead of migrating again: migrating a PostgreSQL schema costs about a
 * second, and the suites open hundreds of stores. Fixtures still call migrateToLatest on the
 * copy, which finds nothing pending; the migrations' own tests migrate from scratch.
 */
async function migratedTemplates(withPostgres: boolean): Promise<{ sqlite: string; pgSql: string }> {
  templateDir = mkdtempSync(join(tmpdir(), 'tether-template-'));
  const sqlite = join(templateDir, 'template.db');
  const file = openStore({ location: sqlite });
  await migrateToLatest(file);
  // Closing checkpoints the WAL into the file, so copying the one file copies everything.
  await file.close();
  if (!withPostgres) return { sqlite, pgSql: '' };

  templateSchema = `tether_t_${Date.now().toString(36)}_template`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  try {
    await admin.query(`create schema ${templateSchema}`);
  } finally {
    await admin.end();
  }
  const schema = openStore({ location: PG_URL, pgSchema: templateSchema, poolSize: 2 });
  await migrateToLatest(schema);
  await schema.close();
  const dump = execFileSync(
    'pg_dump',
    ['--dbname', PG_URL, '--schema', templateSchema, '--no-owner', '--no-privileges', '--inserts'],
    { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 },
  );
  // psql meta-commands (\restrict in newer pg_dump) are not SQL; the schema name is a placeholder.
  const sql = dump
    .split('\n')
    .filter((line) => !line.startsWith('\\'))
    .join('\n')
    .replaceAll(templateSchema, SCHEMA_PLACEHOLDER);
  const pgSql = join(templateDir, 'template.sql');
  writeFileSync(pgSql, sql);
  return { sqlite, pgSql };
}

/** Stands for the schema's name in the replayed DDL (see test/support/stores.ts). */
const SCHEMA_PLACEHOLDER = '__tether_schema__';

export async function teardown(): Promise<void> {
  if (templateDir) rmSync(templateDir, { recursive: true, force: true });
  if (templateSchema) {
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    await admin.query(`drop schema if exists ${templateSchema} cascade`).finally(() => admin.end());
  }
  const line = skipReason
    ? `\n⚠ PostgreSQL suites were SKIPPED: ${skipReason}. Only SQLite was tested. Set TETHER_REQUIRE_PG=1 to make this an error.\n`
    : '\n✓ Store suites ran on SQLite and on PostgreSQL.\n';
  process.stdout.write(line);
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
    /** A migrated SQLite file to copy. */
    sqliteTemplate: string;
    /** A migrated PostgreSQL schema's DDL, its name `__tether_schema__` ('' without PostgreSQL). */
    pgTemplateSql: string;
  }
}
