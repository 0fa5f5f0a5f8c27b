import type { Kysely } from 'kysely';

/**
 * Frozen. Connectors: downstream credentials that live exactly as long as a session.
 * - `connectors`: per tenant, a named downstream system (a PostgreSQL database, …) and how to
 *   reach it; its secret (an admin connection URL) is sealed with the KEK, bound to the row.
 * - `privileges.connectors`: the connector names a privilege's sessions get credentials from.
 * - `connector_jobs`: minting at activation and destroying at the end, written in the same
 *   transaction as the session change and run after it commits, retried until done; a lease
 *   (until when, and a token only its holder knows) makes one runner take a job at a time
 *   across replicas, and only that runner may complete it.
 * - `session_credentials`: what was minted for a session (user name and a fingerprint, never
 *   the value), until the holder has collected it the value sealed, and when it was destroyed.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('connectors')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('settings', 'text', (c) => c.notNull())
    .addColumn('sealed_secret', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('connectors_tenant_name', ['tenant_id', 'name'])
    .execute();

  await db.schema
    .alterTable('privileges')
    .addColumn('connectors', 'text', (c) => c.notNull().defaultTo('[]'))
    .execute();

  await db.schema
    .createTable('connector_jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id'))
    .addColumn('connector_id', 'text', (c) => c.notNull().references('connectors.id'))
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
    .addColumn('lease_until', 'bigint')
    .addColumn('lease_token', 'text')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('done_at', 'bigint')
    .execute();
  // The runner's question: which pending jobs are due.
  await db.schema
    .createIndex('connector_jobs_due')
    .on('connector_jobs')
    .columns(['state', 'next_attempt_at'])
    .execute();
  await db.schema.createIndex('connector_jobs_session').on('connector_jobs').column('session_id').execute();

  await db.schema
    .createTable('session_credentials')
    .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id'))
    .addColumn('connector_id', 'text', (c) => c.notNull().references('connectors.id'))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('sealed_secret', 'text')
    .addColumn('valid_until', 'bigint', (c) => c.notNull())
    .addColumn('minted_at', 'bigint', (c) => c.notNull())
    .addColumn('collected_at', 'bigint')
    .addColumn('destroyed_at', 'bigint')
    .addColumn('connections_terminated', 'integer')
    .addPrimaryKeyConstraint('session_credentials_pk', ['session_id', 'connector_id'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('session_credentials').execute();
  await db.schema.dropTable('connector_jobs').execute();
  await db.schema.alterTable('privileges').dropColumn('connectors').execute();
  await db.schema.dropTable('connectors').execute();
}
