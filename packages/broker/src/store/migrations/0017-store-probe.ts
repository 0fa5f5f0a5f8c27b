import type { Kysely } from 'kysely';

/**
 * Frozen. A table for `/readyz` to write to: a store that can be read but not written (disk
 * full, read-only, failed over to a replica) is not ready. The probe inserts a row and deletes
 * it in one transaction, so the table stays empty.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('store_probe')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('store_probe').execute();
}
