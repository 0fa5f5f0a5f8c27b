import type { Kysely } from 'kysely';

/**
 * Frozen. Notifications: telling people when a request waits or is resolved, or a session ends.
 * - `notification_channels`: per tenant, a named channel (Slack, Teams, email, signed webhook),
 *   the events it gets, its non-secret settings, its secret (a webhook URL with its token, an
 *   SMTP password, an HMAC key) sealed with the KEK and bound to the row, and the outcome of its
 *   latest deliveries (for the API view and alerts).
 * - `notification_outbox`: one row per notification and channel, written in the transaction of
 *   the event and delivered after it commits; a lease (until when, and a token only its holder
 *   knows) makes one runner send a row at a time across replicas; retried with backoff until
 *   delivered or given up (`failed`).
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('notification_channels')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('events', 'text', (c) => c.notNull())
    .addColumn('settings', 'text', (c) => c.notNull())
    .addColumn('sealed_secret', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_success_at', 'bigint')
    .addColumn('last_failure_at', 'bigint')
    .addColumn('last_error', 'text')
    .addUniqueConstraint('notification_channels_tenant_name', ['tenant_id', 'name'])
    .execute();

  await db.schema
    .createTable('notification_outbox')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('channel_id', 'text', (c) => c.notNull().references('notification_channels.id'))
    .addColumn('event', 'text', (c) => c.notNull())
    .addColumn('facts', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
    .addColumn('lease_until', 'bigint')
    .addColumn('lease_token', 'text')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('done_at', 'bigint')
    .execute();
  // The runner's question: which pending rows are due.
  await db.schema
    .createIndex('notification_outbox_due')
    .on('notification_outbox')
    .columns(['state', 'next_attempt_at'])
    .execute();
  await db.schema
    .createIndex('notification_outbox_channel')
    .on('notification_outbox')
    .column('channel_id')
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('notification_outbox').execute();
  await db.schema.dropTable('notification_channels').execute();
}
