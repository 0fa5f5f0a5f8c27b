import type { Kysely } from 'kysely';

/**
 * Frozen. Continuous evaluation: the CAEP transmitters whose Security Event Tokens the broker
 * accepts, the SET ids already seen (a replay is refused), the trust context signals build up
 * per principal (and per session), the durable queue of re-evaluation jobs, and on each
 * session the `iat` below which its tokens were narrowed away.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  // Epoch seconds: a PEP refuses the session's tokens issued before it; later tokens carry at least it.
  await db.schema.alterTable('sessions').addColumn('narrowed_before', 'bigint').execute();
  // Re-evaluation walks a tenant's live sessions in id order, resuming after the last one done.
  await db.schema
    .createIndex('sessions_tenant_state_id')
    .on('sessions')
    .columns(['tenant_id', 'state', 'id'])
    .execute();

  await db.schema
    .createTable('signal_transmitters')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('audience', 'text', (c) => c.notNull())
    .addColumn('jwks_uri', 'text')
    .addColumn('jwks', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('signal_transmitters_tenant_name', ['tenant_id', 'name'])
    // A pushed SET carries no credential but its own iss and aud: together they name one tenant.
    .addUniqueConstraint('signal_transmitters_issuer_audience', ['issuer', 'audience'])
    .execute();

  // RFC 8417 §2.2: jti is unique per issuer. Kept until the SET could no longer be accepted anyway.
  await db.schema
    .createTable('signal_jtis')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('jti', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('signal_jtis_pk', ['tenant_id', 'issuer', 'jti'])
    .execute();
  await db.schema.createIndex('signal_jtis_expiry').on('signal_jtis').column('expires_at').execute();

  // One row per principal (session_id '') and per session a signal named. Each fact keeps the
  // time of the event that set it, so a late, older event does not overwrite a newer one.
  await db.schema
    .createTable('trust_contexts')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('principal_id', 'text', (c) => c.notNull())
    .addColumn('session_id', 'text', (c) => c.notNull())
    .addColumn('device_compliance', 'text')
    .addColumn('device_compliance_at', 'bigint')
    .addColumn('assurance_level', 'text')
    .addColumn('assurance_level_at', 'bigint')
    .addColumn('risk_level', 'text')
    .addColumn('risk_level_at', 'bigint')
    .addColumn('credential_changed_at', 'bigint')
    .addColumn('claims', 'text')
    .addColumn('claims_at', 'bigint')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('trust_contexts_pk', ['tenant_id', 'principal_id', 'session_id'])
    .execute();

  // Written in the transaction of the change that needs it, so a crash cannot lose one; each
  // batch moves `cursor` (the last session id done) under the job's row lock.
  await db.schema
    .createTable('reevaluation_jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('selector', 'text', (c) => c.notNull())
    .addColumn('trigger', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('cursor', 'text', (c) => c.notNull())
    .addColumn('processed', 'bigint', (c) => c.notNull())
    .addColumn('narrowed', 'bigint', (c) => c.notNull())
    .addColumn('ended', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('finished_at', 'bigint')
    .execute();
  await db.schema
    .createIndex('reevaluation_jobs_state')
    .on('reevaluation_jobs')
    .columns(['state', 'created_at'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('reevaluation_jobs').execute();
  await db.schema.dropTable('trust_contexts').execute();
  await db.schema.dropTable('signal_jtis').execute();
  await db.schema.dropTable('signal_transmitters').execute();
  await db.schema.dropIndex('sessions_tenant_state_id').execute();
  await db.schema.alterTable('sessions').dropColumn('narrowed_before').execute();
}
