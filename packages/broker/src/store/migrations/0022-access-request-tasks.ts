import type { Kysely } from 'kysely';

/**
 * Frozen. AuthZEN access requests (Access Request and Approval Profile): each requestable
 * denial's binding token is submitted once (`jti`); the submission's task is the Tether request
 * it created. The `Idempotency-Key` a requester sent, with a hash of the body, lets the same
 * submission sent again get the same task, and a different one under the same key be refused.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('access_request_tasks')
    .addColumn('jti', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('principal_id', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('request_id', 'text', (c) => c.notNull().references('access_requests.id'))
    .addColumn('idempotency_key', 'text')
    .addColumn('body_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('access_request_tasks_idempotency')
    .unique()
    .on('access_request_tasks')
    .columns(['principal_id', 'idempotency_key'])
    .execute();
  await db.schema
    .createIndex('access_request_tasks_request')
    .on('access_request_tasks')
    .column('request_id')
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('access_request_tasks').execute();
}
