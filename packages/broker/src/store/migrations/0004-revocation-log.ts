import type { Kysely } from 'kysely';

/**
 * Frozen. The revocation log: per-tenant, gap-free, sequence-numbered events streamed to the
 * enforcement points, and the head of each tenant's log.
 *
 * Why the head row: an event's `seq` is taken by incrementing the tenant's head row, which
 * locks that row until the transaction ends. Two transactions of one tenant therefore commit
 * in the order of their sequence numbers, and on PostgreSQL under READ COMMITTED a reader that
 * sees event n+1 also sees event n (the writer of n+1 could only take its number after the
 * writer of n had committed, or rolled back and given n up). A stream that follows the log
 * with `seq > last` never skips an event that commits later. A sequence or `max(seq) + 1`
 * would not give that: numbers would be taken and then committed out of order.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('revocation_events')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    // Unlike the audit chain, nothing here verifies a hand-edited log: the key makes a
    // duplicated position impossible instead.
    .addPrimaryKeyConstraint('revocation_events_pk', ['tenant_id', 'seq'])
    .execute();

  await db.schema
    .createTable('revocation_heads')
    .addColumn('tenant_id', 'text', (c) => c.primaryKey().references('tenants.id'))
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('revocation_heads').execute();
  await db.schema.dropTable('revocation_events').execute();
}
