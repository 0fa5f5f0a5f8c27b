import type { Kysely } from 'kysely';

/**
 * Frozen. Recorded sessions: a privilege may require that its sessions run recorded.
 * - `privileges.recording`: `none`, `output` or `input_and_output` (keystrokes too).
 * - `recordings`: one row per recorded session, written in the session's activation
 *   transaction: the mode it was activated with, how much has arrived (chunks, bytes, the time
 *   of the last event in microseconds), a digest chaining every chunk's hash, whether the final
 *   chunk came, and `due_at`: by when the next chunk must arrive, or the session ends
 *   (`recording_lapsed`); null once complete or ended.
 * - `recording_chunks`: the asciicast text of each chunk, in order; each chunk's SHA-256 is also
 *   in the tenant's audit chain, so an edited, deleted or slipped-in chunk is detected.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('privileges')
    .addColumn('recording', 'text', (c) => c.notNull().defaultTo('none'))
    .execute();

  await db.schema
    .createTable('recordings')
    .addColumn('session_id', 'text', (c) => c.primaryKey().references('sessions.id'))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('mode', 'text', (c) => c.notNull())
    .addColumn('chunks', 'integer', (c) => c.notNull())
    .addColumn('bytes', 'bigint', (c) => c.notNull())
    .addColumn('last_time_us', 'bigint', (c) => c.notNull())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('complete', 'integer', (c) => c.notNull())
    .addColumn('due_at', 'bigint')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  // The sweeper's question: which recordings are overdue.
  await db.schema.createIndex('recordings_due').on('recordings').column('due_at').execute();

  await db.schema
    .createTable('recording_chunks')
    .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id'))
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('received_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('recording_chunks_pk', ['session_id', 'seq'])
    .execute();
  await db.schema
    .createIndex('recording_chunks_tenant')
    .on('recording_chunks')
    .columns(['tenant_id', 'session_id', 'seq'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('recording_chunks').execute();
  await db.schema.dropTable('recordings').execute();
  await db.schema.alterTable('privileges').dropColumn('recording').execute();
}
