import { type Kysely, sql } from 'kysely';

/**
 * Frozen. The MSP operating model (issue 14): provider and customer tenants, and the
 * customer-accepted relationships under which a provider's operators request a customer's
 * privileges.
 * - `tenants.kind`: 'standalone' (every tenant before this), 'provider' or 'customer';
 *   `tenants.provider_tenant_id`: a customer's provider (null otherwise).
 * - `relationships`: one provider, one customer; which provider groups (ids in the provider
 *   tenant) may request which customer privileges (ids in the customer tenant), who approves,
 *   and until when. `state`: proposed → active → ended. `seal` authenticates the row's
 *   trust-bearing fields under the KEK, so a database writer cannot forge or widen one.
 * - `principals.home_tenant_id`/`home_principal_id`: a provider operator's seat in a customer
 *   tenant (it authenticates with its home principal's keys, and holds nothing else).
 * - `access_requests.relationship_id`, `sessions.relationship_id`: what a request or session
 *   was made under; ending the relationship ends them.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('tenants')
    .addColumn('kind', 'text', (c) => c.notNull().defaultTo('standalone'))
    .execute();
  await db.schema.alterTable('tenants').addColumn('provider_tenant_id', 'text').execute();
  await db.schema.createIndex('tenants_provider').on('tenants').column('provider_tenant_id').execute();
  await db.schema
    .createTable('relationships')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('provider_tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('customer_tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('provider_groups', 'text', (c) => c.notNull())
    .addColumn('privileges', 'text', (c) => c.notNull())
    .addColumn('approval', 'text', (c) => c.notNull())
    .addColumn('starts_at', 'bigint')
    .addColumn('ends_at', 'bigint', (c) => c.notNull())
    .addColumn('proposed_by', 'text', (c) => c.notNull())
    .addColumn('proposed_at', 'bigint', (c) => c.notNull())
    .addColumn('accepted_by', 'text')
    .addColumn('accepted_at', 'bigint')
    .addColumn('ended_by', 'text')
    .addColumn('ended_at', 'bigint')
    .addColumn('end_reason', 'text')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('seal', 'text', (c) => c.notNull())
    .addUniqueConstraint('relationships_name', ['provider_tenant_id', 'customer_tenant_id', 'name'])
    .execute();
  await db.schema
    .createIndex('relationships_customer')
    .on('relationships')
    .columns(['customer_tenant_id', 'state'])
    .execute();
  await db.schema
    .createIndex('relationships_provider')
    .on('relationships')
    .columns(['provider_tenant_id', 'state'])
    .execute();
  await db.schema
    .createIndex('relationships_end')
    .on('relationships')
    .columns(['state', 'ends_at'])
    .execute();
  await db.schema.alterTable('principals').addColumn('home_tenant_id', 'text').execute();
  await db.schema.alterTable('principals').addColumn('home_principal_id', 'text').execute();
  await db.schema
    .createIndex('principals_seat')
    .on('principals')
    .columns(['tenant_id', 'home_principal_id'])
    .unique()
    .where(sql<boolean>`home_principal_id is not null`)
    .execute();
  await db.schema.alterTable('access_requests').addColumn('relationship_id', 'text').execute();
  await db.schema.alterTable('sessions').addColumn('relationship_id', 'text').execute();
  await db.schema
    .createIndex('access_requests_relationship')
    .on('access_requests')
    .column('relationship_id')
    .execute();
  await db.schema.createIndex('sessions_relationship').on('sessions').column('relationship_id').execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('sessions_relationship').execute();
  await db.schema.dropIndex('access_requests_relationship').execute();
  await db.schema.alterTable('sessions').dropColumn('relationship_id').execute();
  await db.schema.alterTable('access_requests').dropColumn('relationship_id').execute();
  await db.schema.dropIndex('principals_seat').execute();
  await db.schema.alterTable('principals').dropColumn('home_principal_id').execute();
  await db.schema.alterTable('principals').dropColumn('home_tenant_id').execute();
  await db.schema.dropTable('relationships').execute();
  await db.schema.dropIndex('tenants_provider').execute();
  await db.schema.alterTable('tenants').dropColumn('provider_tenant_id').execute();
  await db.schema.alterTable('tenants').dropColumn('kind').execute();
}
