import type { Kysely } from 'kysely';

/**
 * Frozen. The SSF transmitter: event streams registered by receivers (OpenID Shared Signals
 * Framework 1.0), and the outbox of Security Event Tokens waiting to be delivered on them.
 *
 * An outbox row is written in the same transaction as the state change it reports (a session
 * ended or narrowed), so nothing is lost and nothing is sent for a change that rolled back.
 * Each stream numbers its rows (`last_seq` on the stream, incremented under the stream's row
 * lock), and only a stream's oldest row is ever in flight: events reach a receiver in order.
 * The stream row also carries the delivery schedule (`next_attempt_at`) and the lease of the
 * replica pushing its head (`lease_token`, valid until `next_attempt_at`).
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('ssf_streams')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('owner_id', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('aud', 'text', (c) => c.notNull())
    .addColumn('events_requested', 'text', (c) => c.notNull())
    .addColumn('method', 'text', (c) => c.notNull())
    .addColumn('endpoint_url', 'text')
    .addColumn('authorization_enc', 'text')
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('status_reason', 'text')
    .addColumn('last_seq', 'bigint', (c) => c.notNull())
    .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
    .addColumn('lease_token', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  // Every revocation event looks up its tenant's streams.
  await db.schema
    .createIndex('ssf_streams_tenant')
    .on('ssf_streams')
    .columns(['tenant_id', 'status'])
    .execute();
  // The delivery worker looks for push streams whose next attempt is due.
  await db.schema
    .createIndex('ssf_streams_due')
    .on('ssf_streams')
    .columns(['method', 'status', 'next_attempt_at'])
    .execute();

  await db.schema
    .createTable('ssf_outbox')
    .addColumn('stream_id', 'text', (c) => c.notNull().references('ssf_streams.id'))
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('jti', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('facts', 'text', (c) => c.notNull())
    .addColumn('set_claims', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('last_error', 'text')
    .addPrimaryKeyConstraint('ssf_outbox_pk', ['stream_id', 'seq'])
    .execute();
  // Poll acknowledgements name SETs by jti.
  await db.schema
    .createIndex('ssf_outbox_jti')
    .on('ssf_outbox')
    .columns(['stream_id', 'jti'])
    .unique()
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('ssf_outbox_jti').execute();
  await db.schema.dropTable('ssf_outbox').execute();
  await db.schema.dropIndex('ssf_streams_due').execute();
  await db.schema.dropIndex('ssf_streams_tenant').execute();
  await db.schema.dropTable('ssf_streams').execute();
}
