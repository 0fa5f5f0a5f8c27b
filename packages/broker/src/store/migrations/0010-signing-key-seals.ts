import type { Kysely } from 'kysely';

/**
 * Frozen. How a signing key's private key is sealed.
 *
 * `seal_version` 1: sealed with the KEK alone (every key written before this migration).
 * `seal_version` 2: sealed with the key id and the public key's thumbprint bound as AEAD
 * associated data, so the sealed key opens only in the row it was made for. Migrations hold no
 * KEK: the broker re-seals version-1 rows at its next start, after checking that each one
 * opens and matches its public key (tokens/keys.ts, `resealLegacySigningKeys`).
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('signing_keys')
    .addColumn('seal_version', 'integer', (c) => c.notNull().defaultTo(1))
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('signing_keys').dropColumn('seal_version').execute();
}
