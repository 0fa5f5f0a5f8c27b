import { type Kysely, sql } from 'kysely';

/**
 * Frozen. What lets activation, refresh and end cost the same at 100,000 live sessions as at
 * 1,000 (issue 16). A status list's slot count, kept in the transaction that inserts or deletes a slot, so
 * an activation decides whether a list has room without counting its slots (a `count(*)` that
 * took activation from 8 to 18 ms between 1,000 and 50,000 live sessions).
 * - `status_lists.slots`: how many rows `status_list_slots` holds for the list, held or past
 *   `reusable_at` alike; backfilled here.
 * - `status_list_slots_reusable`: finds the slots past `reusable_at` of one list without a scan,
 *   for the reclaim an activation runs when a list's count reaches its fill limit.
 * - `status_list_slots_flagged`: a list's non-VALID entries (what its signed form encodes)
 *   without reading its valid ones: re-signing a list after a session ended read every slot.
 * - `sessions_idle_deadline`: live sessions with an idle timeout by the instant they go idle.
 *   The idle sweep (every few seconds) read every active session to find the idle ones: 30 to
 *   140 ms of a SQLite broker's single thread with 100,000 live sessions. Partial: sessions
 *   without an idle timeout are not in it. `state` leads so that either planner, without
 *   statistics, prefers it to the (`state`, …) indexes.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('status_lists')
    .addColumn('slots', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await sql`update status_lists set slots = (select count(*) from status_list_slots where status_list_slots.list_id = status_lists.id)`.execute(
    db,
  );
  await db.schema
    .createIndex('status_list_slots_reusable')
    .on('status_list_slots')
    .columns(['list_id', 'reusable_at'])
    .execute();
  await db.schema
    .createIndex('status_list_slots_flagged')
    .on('status_list_slots')
    .columns(['list_id', 'idx'])
    .where(sql<boolean>`status <> 0`)
    .execute();
  await sql`create index sessions_idle_deadline on sessions (state, (last_activity_at + idle_timeout_s * cast(1000 as bigint))) where idle_timeout_s is not null`.execute(
    db,
  );
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('sessions_idle_deadline').execute();
  await db.schema.dropIndex('status_list_slots_flagged').execute();
  await db.schema.dropIndex('status_list_slots_reusable').execute();
  await db.schema.alterTable('status_lists').dropColumn('slots').execute();
}
