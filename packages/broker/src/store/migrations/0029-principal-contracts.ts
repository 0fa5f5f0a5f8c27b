import type { Kysely } from 'kysely';

/**
 * Frozen. Contract windows on principals (a contractor's engagement): epoch milliseconds, like
 * every other time of the store; null for no bound on that side.
 * - `principals.contract_starts_at`: before it the principal may not request or hold a session.
 * - `principals.contract_ends_at`: no session of the principal outlives it; at it the
 *   principal's live sessions end (`contract_ended`) and its pending requests are cancelled.
 *   The index serves the sweeper's "whose contract has ended" question.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('principals').addColumn('contract_starts_at', 'bigint').execute();
  await db.schema.alterTable('principals').addColumn('contract_ends_at', 'bigint').execute();
  await db.schema
    .createIndex('principals_contract_end')
    .on('principals')
    .column('contract_ends_at')
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('principals_contract_end').execute();
  await db.schema.alterTable('principals').dropColumn('contract_ends_at').execute();
  await db.schema.alterTable('principals').dropColumn('contract_starts_at').execute();
}
