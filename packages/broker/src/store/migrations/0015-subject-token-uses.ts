import type { Kysely } from 'kysely';

/**
 * Frozen. Single-use subject tokens for RFC 8693 token exchange (issue 9 item 6).
 *
 * A subject token (a CI run's OIDC token) that started a session is remembered until it could
 * no longer be accepted anyway (its `exp` plus the clock tolerance), so the same token cannot
 * start a second session. `token_key` is a SHA-256 digest — of (issuer, jti) when the token has
 * a `jti`, else of the whole token — never the token itself: the table holds no credential.
 * The primary key is what makes a token single-use across replicas and concurrent exchanges.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('subject_token_uses')
    .addColumn('token_key', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('federation_id', 'text', (c) => c.notNull())
    .addColumn('request_id', 'text', (c) => c.notNull())
    .addColumn('used_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('subject_token_uses_expiry')
    .on('subject_token_uses')
    .column('expires_at')
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('subject_token_uses').execute();
}
