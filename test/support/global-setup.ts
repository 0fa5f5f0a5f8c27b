import pg from 'pg';
import type { TestProject } from 'vitest/node';

/**
 * Probes PostgreSQL once for the whole run. With TETHER_REQUIRE_PG=1 (CI) an unreachable
 * server fails the run; otherwise its suites are skipped and the summary says so, and why.
 */
const PG_URL = process.env.TETHER_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

let skipReason: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    // Schemas left behind by an interrupted earlier run.
    const stale = await client.query<{ nspname: string }>(
      "select nspname from pg_namespace where nspname like 'tether_t_%'",
    );
    for (const row of stale.rows) await client.query(`drop schema if exists "${row.nspname}" cascade`);
  } catch (err) {
    skipReason = `PostgreSQL at ${PG_URL.replace(/\/\/[^@]*@/, '//')} is not reachable (${(err as Error).message})`;
  } finally {
    await client.end().catch(() => undefined);
  }
  if (skipReason && process.env.TETHER_REQUIRE_PG === '1') {
    throw new Error(`TETHER_REQUIRE_PG=1 but ${skipReason}`);
  }
  project.provide('pgUrl', skipReason ? '' : PG_URL);
}

export function teardown(): void {
  const line = skipReason
    ? `\n⚠ PostgreSQL suites were SKIPPED: ${skipReason}. Only SQLite was tested. Set TETHER_REQUIRE_PG=1 to make this an error.\n`
    : '\n✓ Store suites ran on SQLite and on PostgreSQL.\n';
  process.stdout.write(line);
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
  }
}
