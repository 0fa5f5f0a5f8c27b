import type { Kysely } from 'kysely';

/**
 * Frozen. The keyed audit chain.
 *
 * `audit_records.mac_version` 0: the record's `hash` is the unkeyed SHA-256 of its fields (every
 * record written before this migration); 1: an HMAC-SHA256 under a key derived from the KEK.
 * `audit_heads.mac_key` names the key a chain is keyed with from then on (null: not yet keyed;
 * the broker seals such a chain's unkeyed prefix with a checkpoint at its next start, since a
 * migration holds no KEK). `audit_keys` says which key new chains are keyed with.
 * `audit_checkpoints` are authenticated snapshots of a chain's head (`tag`: HMAC under another
 * KEK-derived key) that verification compares the chain with. `audited_settings` holds the
 * digest of the settings last recorded, so that a start with changed settings is recorded.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('audit_records')
    .addColumn('mac_version', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable('audit_heads').addColumn('mac_key', 'text').execute();
  await db.schema
    .createTable('audit_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('audit_checkpoints')
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('tag', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('audit_checkpoints_pk', ['tenant_id', 'seq'])
    .execute();
  await db.schema
    .createTable('audited_settings')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('settings', 'text', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('audited_settings').execute();
  await db.schema.dropTable('audit_checkpoints').execute();
  await db.schema.dropTable('audit_keys').execute();
  await db.schema.alterTable('audit_heads').dropColumn('mac_key').execute();
  await db.schema.alterTable('audit_records').dropColumn('mac_version').execute();
}
