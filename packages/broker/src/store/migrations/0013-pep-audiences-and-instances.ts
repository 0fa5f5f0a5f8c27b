import type { Kysely } from 'kysely';

/**
 * Frozen. Enforcement points, per audience and per instance:
 * - `pep_audiences`: the audiences a PEP principal enforces, set by admins. A PEP may record
 *   decisions only for these, and only about sessions whose grant names the audience.
 * - `pep_instances`: each running process of a PEP principal (a random id per process start,
 *   sent with its acks), how far it has applied the log and when it last acked. A receipt waits
 *   for every live instance, so one frozen replica of two sharing an identity is not hidden by
 *   the other.
 * - `pep_instance_acks`: per instance, the acks that moved it forward, from which a receipt
 *   tells when that instance enforced an end (as `pep_acks` does per principal).
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('pep_audiences')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('principal_id', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('audience', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('pep_audiences_pk', ['principal_id', 'audience'])
    .execute();

  await db.schema
    .createTable('pep_instances')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('principal_id', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('instance_id', 'text', (c) => c.notNull())
    .addColumn('last_applied_seq', 'bigint', (c) => c.notNull())
    .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('pep_instances_pk', ['principal_id', 'instance_id'])
    .execute();
  // Receipts read a tenant's instances; pruning drops those not heard from for long.
  await db.schema
    .createIndex('pep_instances_tenant')
    .on('pep_instances')
    .columns(['tenant_id', 'last_seen_at'])
    .execute();
  await db.schema.createIndex('pep_instances_seen').on('pep_instances').column('last_seen_at').execute();

  await db.schema
    .createTable('pep_instance_acks')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('principal_id', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('instance_id', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('pep_instance_acks_pk', ['principal_id', 'instance_id', 'seq'])
    .execute();
  await db.schema.createIndex('pep_instance_acks_at').on('pep_instance_acks').column('at').execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('pep_instance_acks').execute();
  await db.schema.dropTable('pep_instances').execute();
  await db.schema.dropTable('pep_audiences').execute();
}
