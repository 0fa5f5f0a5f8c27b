import type { Kysely } from 'kysely';

/**
 * Frozen. A status list's version: bumped in the transaction that changes what the published
 * list encodes (an entry set INVALID, an INVALID entry's slot reused). A broker re-signs a list
 * only when its version moved, so a relying party's fetch costs one small read, not a scan.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('status_lists')
    .addColumn('version', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('status_lists').dropColumn('version').execute();
}
