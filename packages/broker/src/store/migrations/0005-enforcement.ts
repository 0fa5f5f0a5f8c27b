import type { Kysely } from 'kysely';

/**
 * Frozen. What the broker knows about its enforcement points (PEPs): per PEP, how far it has
 * applied its tenant's revocation log and when it was last heard from; and the history of
 * its acknowledgements, from which a session receipt tells when each PEP enforced an end
 * (the first ack whose `seq` covers the `session_ended` event).
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('peps')
    .addColumn('principal_id', 'text', (c) => c.primaryKey().references('principals.id'))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('last_applied_seq', 'bigint', (c) => c.notNull())
    .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
    .addColumn('decisions_dropped', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('peps_tenant').on('peps').column('tenant_id').execute();

  // A row is written only when an ack moves its PEP forward, so (principal, seq) is unique
  // and "the first ack with seq >= n" is one index seek per PEP.
  await db.schema
    .createTable('pep_acks')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('principal_id', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('pep_acks_pk', ['principal_id', 'seq'])
    .execute();
  // For pruning old history.
  await db.schema.createIndex('pep_acks_at').on('pep_acks').column('at').execute();

  // A receipt finds a session's `session_ended` event by its subject (the session id).
  await db.schema
    .createIndex('revocation_events_subject')
    .on('revocation_events')
    .columns(['tenant_id', 'subject'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('revocation_events_subject').execute();
  await db.schema.dropTable('pep_acks').execute();
  await db.schema.dropTable('peps').execute();
}
