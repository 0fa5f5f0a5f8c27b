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
