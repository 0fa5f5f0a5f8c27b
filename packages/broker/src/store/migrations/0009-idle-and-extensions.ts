import { type Kysely, sql } from 'kysely';

/**
 * Frozen. Idle timeouts and session extensions.
 *
 * A privilege may set an idle timeout; a session copies the one it was activated with, so a
 * later change to the privilege does not silently change the sessions already running. An
 * access request is now of a kind: `access` (a new session) or `extension` (more time for the
 * live session it names, `session_id`; its `duration_s` is the time asked for on top). A
 * session has at most one pending extension, held by a partial unique index.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  // Seconds without activity (refresh, allowed decision) before a session ends; null: never.
  await db.schema.alterTable('privileges').addColumn('idle_timeout_s', 'integer').execute();
  await db.schema.alterTable('sessions').addColumn('idle_timeout_s', 'integer').execute();
  // The idle sweep looks for active sessions by their last activity.
  await db.schema
    .createIndex('sessions_state_activity')
    .on('sessions')
    .columns(['state', 'last_activity_at'])
    .execute();

  await db.schema
    .alterTable('access_requests')
    .addColumn('kind', 'text', (c) => c.notNull().defaultTo('access'))
    .execute();
  await db.schema.alterTable('access_requests').addColumn('session_id', 'text').execute();
  await db.schema
    .createIndex('access_requests_one_pending_extension')
    .on('access_requests')
    .column('session_id')
    .unique()
    .where(sql<boolean>`state = 'pending' and session_id is not null`)
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('access_requests_one_pending_extension').execute();
  await db.schema.alterTable('access_requests').dropColumn('session_id').execute();
  await db.schema.alterTable('access_requests').dropColumn('kind').execute();
  await db.schema.dropIndex('sessions_state_activity').execute();
  await db.schema.alterTable('sessions').dropColumn('idle_timeout_s').execute();
  await db.schema.alterTable('privileges').dropColumn('idle_timeout_s').execute();
}
