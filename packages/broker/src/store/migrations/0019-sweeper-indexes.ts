import type { Kysely } from 'kysely';

/**
 * Frozen. Indexes for two of the sweeper's steps, which scanned their whole table at every
 * sweep: compacting the revocation log (`at` older than the retention) and expiring pending
 * requests (`state`, `expires_at`). With 100,000 ended sessions a SQLite broker spent 20 and
 * 11 ms of its single thread on them per sweep, while a thousand PEPs were catching up.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('revocation_events_at').on('revocation_events').column('at').execute();
  await db.schema
    .createIndex('access_requests_state_expiry')
    .on('access_requests')
    .columns(['state', 'expires_at'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('access_requests_state_expiry').execute();
  await db.schema.dropIndex('revocation_events_at').execute();
}
