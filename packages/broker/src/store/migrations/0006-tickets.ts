import type { Kysely } from 'kysely';

/**
 * Frozen. The ticket register: signed webhooks that ticket systems deliver to (their shared
 * secret sealed under the KEK), the delivery ids already seen (a replay is ignored), and the
 * tickets themselves, one row per reference and tenant. Sessions and requests are looked up
 * by ticket when one closes.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('webhooks')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('secret_enc', 'text', (c) => c.notNull())
    .addColumn('assignee_attribute', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('webhooks_tenant_name', ['tenant_id', 'name'])
    .execute();

  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('webhook_id', 'text', (c) => c.notNull())
    .addColumn('delivery_id', 'text', (c) => c.notNull())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('outcome', 'text', (c) => c.notNull())
    .addColumn('received_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('webhook_deliveries_pk', ['webhook_id', 'delivery_id'])
    .execute();

  await db.schema
    .createTable('tickets')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('ref', 'text', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('url', 'text')
    .addColumn('assignees', 'text', (c) => c.notNull())
    .addColumn('event_at', 'bigint', (c) => c.notNull())
    .addColumn('closed_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('tickets_pk', ['tenant_id', 'ref'])
    .execute();
  await db.schema.createIndex('tickets_tenant_state').on('tickets').columns(['tenant_id', 'state']).execute();

  // Closing a ticket ends the sessions and cancels the requests that name it.
  await db.schema
    .createIndex('sessions_tenant_ticket')
    .on('sessions')
    .columns(['tenant_id', 'ticket', 'state'])
    .execute();
  await db.schema
    .createIndex('access_requests_tenant_ticket')
    .on('access_requests')
    .columns(['tenant_id', 'ticket', 'state'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('access_requests_tenant_ticket').execute();
  await db.schema.dropIndex('sessions_tenant_ticket').execute();
  await db.schema.dropTable('tickets').execute();
  await db.schema.dropTable('webhook_deliveries').execute();
  await db.schema.dropTable('webhooks').execute();
}
