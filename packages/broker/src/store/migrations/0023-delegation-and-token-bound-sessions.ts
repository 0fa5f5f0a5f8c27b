import type { Kysely } from 'kysely';

/**
 * Frozen. Delegated sub-sessions (RFC 8693 delegation, `act`) and sessions bound to their
 * subject token's lifetime.
 * - `sessions.parent_session_id`: the session a sub-session was delegated from; null for a
 *   session of its own. Ending a session ends its live sub-sessions, so the index answers
 *   "which live sessions hang from this one".
 * - `sessions.delegation_depth`: 0 for a session of its own, the parent's plus one for a
 *   sub-session; bounded by a setting.
 * - `sessions.act`: the RFC 8693 §4.1 `act` claim of the session's tokens (JSON): who acts, and
 *   for whom before them; null for a session of its own.
 * - `sessions.call_budget`: JSON `{ action: calls }`, the allowed calls per action a
 *   sub-session may make; `sessions.calls_made` what the PEPs reported so far. Null: no budget.
 * - `federations.ends_with_subject_token`: a session exchanged under this trust record lasts
 *   no longer than the subject token (a Kubernetes projected service-account token is bound to
 *   its pod and expires with it).
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('sessions').addColumn('parent_session_id', 'text').execute();
  await db.schema
    .alterTable('sessions')
    .addColumn('delegation_depth', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable('sessions').addColumn('act', 'text').execute();
  await db.schema.alterTable('sessions').addColumn('call_budget', 'text').execute();
  await db.schema.alterTable('sessions').addColumn('calls_made', 'text').execute();
  await db.schema
    .createIndex('sessions_parent_state')
    .on('sessions')
    .columns(['parent_session_id', 'state'])
    .execute();
  await db.schema
    .alterTable('federations')
    .addColumn('ends_with_subject_token', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('federations').dropColumn('ends_with_subject_token').execute();
  await db.schema.dropIndex('sessions_parent_state').execute();
  for (const column of ['calls_made', 'call_budget', 'act', 'delegation_depth', 'parent_session_id'])
    await db.schema.alterTable('sessions').dropColumn(column).execute();
}
