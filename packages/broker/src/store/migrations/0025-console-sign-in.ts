import type { Kysely } from 'kysely';

/**
 * Frozen. People sign in to the console with passkeys (WebAuthn).
 * - `console_invitations`: one-time enrolment links an admin makes for a principal; only the
 *   SHA-256 of the link's secret is kept; used once, before `expires_at`.
 * - `passkeys`: a principal's WebAuthn credentials. The public key is sealed with the key
 *   encryption key, bound to the tenant, principal and credential id: a row written into the
 *   store by anyone without that key does not open, so it signs nobody in.
 * - `webauthn_challenges`: each ceremony's challenge, taken once, until `expires_at`.
 * - `console_sessions`: a browser's signed-in session; only the SHA-256 of its cookie is kept,
 *   with the SHA-256 of its CSRF token, its idle and hard expiry, and how it ended.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('console_invitations')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('principal_id', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .execute();
  await db.schema
    .createTable('passkeys')
    .addColumn('credential_id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('principal_id', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('sealed_public_key', 'text', (c) => c.notNull())
    .addColumn('counter', 'bigint', (c) => c.notNull())
    .addColumn('transports', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .execute();
  await db.schema.createIndex('passkeys_principal').on('passkeys').column('principal_id').execute();
  await db.schema
    .createTable('webauthn_challenges')
    .addColumn('challenge', 'text', (c) => c.primaryKey())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('tenant_id', 'text')
    .addColumn('principal_id', 'text')
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('webauthn_challenges_expiry')
    .on('webauthn_challenges')
    .column('expires_at')
    .execute();
  await db.schema
    .createTable('console_sessions')
    .addColumn('id_hash', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('principal_id', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('csrf_hash', 'text', (c) => c.notNull())
    .addColumn('passkey_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('ended_at', 'bigint')
    .addColumn('end_reason', 'text')
    .execute();
  await db.schema
    .createIndex('console_sessions_principal')
    .on('console_sessions')
    .column('principal_id')
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['console_sessions', 'webauthn_challenges', 'passkeys', 'console_invitations'])
    await db.schema.dropTable(table).execute();
}
