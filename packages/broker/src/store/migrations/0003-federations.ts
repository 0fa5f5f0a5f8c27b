import type { Kysely } from 'kysely';

/**
 * Frozen. Federation trust records (RFC 8693 token exchange with a workload's OIDC token) and
 * the link from a request to the trust record and token claims it was created from.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('federations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('audience', 'text', (c) => c.notNull())
    .addColumn('jwks_uri', 'text')
    .addColumn('jwks', 'text')
    .addColumn('algorithms', 'text', (c) => c.notNull())
    .addColumn('principal_mapping', 'text', (c) => c.notNull())
    .addColumn('context_claims', 'text', (c) => c.notNull())
    .addColumn('task_claim', 'text', (c) => c.notNull())
    .addColumn('max_token_age_s', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('federations_tenant_name', ['tenant_id', 'name'])
    // The exchange's caller has no credential but the token: (iss, aud) alone must name one
    // trust record, across every tenant.
    .addUniqueConstraint('federations_issuer_audience', ['issuer', 'audience'])
    .execute();

  await db.schema
    .createTable('federated_requests')
    .addColumn('request_id', 'text', (c) => c.primaryKey().references('access_requests.id'))
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    // No foreign key: the link outlives a deleted trust record, as history.
    .addColumn('federation_id', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('principal_tags', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('federated_requests_federation')
    .on('federated_requests')
    .column('federation_id')
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('federated_requests').execute();
  await db.schema.dropTable('federations').execute();
}
