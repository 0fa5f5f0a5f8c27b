import type { Kysely } from 'kysely';

/**
 * Frozen. CLI sign-in by device authorization (RFC 8628): `tether login` asks for a code, the
 * person confirms it in the console, the CLI receives a broker-API token bound to its own DPoP
 * key. Only the SHA-256 of the device code is kept; the user code is short and single-use.
 * `state`: pending → approved or denied → used (the token was issued) → ended (`tether logout`,
 * or an admin); a token names its login, and stops working once the login is not `used`.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('device_logins')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('device_code_hash', 'text', (c) => c.notNull().unique())
    .addColumn('user_code', 'text', (c) => c.notNull().unique())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('jkt', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('principal_id', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('last_poll_at', 'bigint')
    .addColumn('token_expires_at', 'bigint')
    .execute();
  await db.schema.createIndex('device_logins_expiry').on('device_logins').column('expires_at').execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('device_logins').execute();
}
