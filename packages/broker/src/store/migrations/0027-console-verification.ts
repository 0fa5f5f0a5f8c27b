import type { Kysely } from 'kysely';

/**
 * Frozen. `console_sessions.verified_at`: when the person last verified themselves with a
 * passkey in this console session (at sign-in, or again before an approval that asks for a
 * fresh verification); null when they signed in otherwise (their company's OIDC provider).
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('console_sessions').addColumn('verified_at', 'bigint').execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('console_sessions').dropColumn('verified_at').execute();
}
