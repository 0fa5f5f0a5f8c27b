import type { Kysely } from 'kysely';

/**
 * Frozen. Sessions, their refresh tokens, DPoP proof ids seen by the broker, and Token Status
 * List slots.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    // One session per approved request: the unique key is what makes activation happen once.
    .addColumn('request_id', 'text', (c) => c.notNull().unique().references('access_requests.id'))
    .addColumn('principal_id', 'text', (c) => c.notNull())
    .addColumn('privilege_id', 'text', (c) => c.notNull())
    .addColumn('ticket', 'text')
    .addColumn('jkt', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('end_reason', 'text')
    .addColumn('ended_by', 'text')
    .addColumn('activated_at', 'bigint', (c) => c.notNull())
    .addColumn('hard_expires_at', 'bigint', (c) => c.notNull())
    .addColumn('ended_at', 'bigint')
    .addColumn('status_list_id', 'integer', (c) => c.notNull())
    .addColumn('status_idx', 'integer', (c) => c.notNull())
    .addColumn('grant', 'text', (c) => c.notNull())
    .addColumn('last_activity_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('sessions_tenant_state')
    .on('sessions')
    .columns(['tenant_id', 'state'])
    .execute();
  await db.schema
    .createIndex('sessions_state_expiry')
    .on('sessions')
    .columns(['state', 'hard_expires_at'])
    .execute();
  await db.schema
    .createIndex('sessions_tenant_principal')
    .on('sessions')
    .columns(['tenant_id', 'principal_id'])
    .execute();

  await db.schema
    .createTable('refresh_tokens')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id'))
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('idle_expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .execute();
  await db.schema.createIndex('refresh_tokens_session').on('refresh_tokens').column('session_id').execute();

  await db.schema
    .createTable('dpop_jtis')
    .addColumn('jkt', 'text', (c) => c.notNull())
    .addColumn('jti', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('dpop_jtis_pk', ['jkt', 'jti'])
    .execute();
  await db.schema.createIndex('dpop_jtis_expiry').on('dpop_jtis').column('expires_at').execute();

  await db.schema
    .createTable('status_lists')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('bits', 'integer', (c) => c.notNull())
    .addColumn('size', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('status_lists_tenant').on('status_lists').column('tenant_id').execute();

  await db.schema
    .createTable('status_list_slots')
    .addColumn('list_id', 'integer', (c) => c.notNull().references('status_lists.id'))
    .addColumn('idx', 'integer', (c) => c.notNull())
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('session_id', 'text', (c) => c.notNull())
    .addColumn('status', 'integer', (c) => c.notNull())
    // After this instant no token naming the slot can be valid, so the slot may be reused.
    .addColumn('reusable_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('status_list_slots_pk', ['list_id', 'idx'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['status_list_slots', 'status_lists', 'dpop_jtis', 'refresh_tokens', 'sessions']) {
    await db.schema.dropTable(table).execute();
  }
}
