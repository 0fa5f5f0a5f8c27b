import type { RecordedMode, Recording } from '../../domain/recording.js';
import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { RecordingChunkRow, RecordingRow } from '../schema.js';

function toRecording(row: RecordingRow): Recording {
  return {
    sessionId: row.session_id,
    tenantId: row.tenant_id,
    mode: row.mode as RecordedMode,
    chunks: Number(row.chunks),
    bytes: Number(row.bytes),
    lastTimeUs: Number(row.last_time_us),
    digest: row.digest,
    complete: Number(row.complete) === 1,
    dueAt: row.due_at === null ? null : Number(row.due_at),
    updatedAt: Number(row.updated_at),
  };
}

function toRow(r: Recording): RecordingRow {
  return {
    session_id: r.sessionId,
    tenant_id: r.tenantId,
    mode: r.mode,
    chunks: r.chunks,
    bytes: r.bytes,
    last_time_us: r.lastTimeUs,
    digest: r.digest,
    complete: r.complete ? 1 : 0,
    due_at: r.dueAt,
    updated_at: r.updatedAt,
  };
}

export async function insertRecording(tx: TxHandle, r: Recording): Promise<void> {
  await tx.db.insertInto('recordings').values(toRow(r)).execute();
}

export async function findRecording(
  h: StoreHandle,
  tenantId: string,
  sessionId: string,
): Promise<Recording | undefined> {
  const row = await h.db
    .selectFrom('recordings')
    .selectAll()
    .where('session_id', '=', sessionId)
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst();
  return row && toRecording(row);
}

/** The recording's row, locked: chunks are appended to it one at a time. */
export async function lockRecording(tx: TxHandle, sessionId: string): Promise<Recording | undefined> {
  const row = await forUpdate(
    tx,
    tx.db.selectFrom('recordings').selectAll().where('session_id', '=', sessionId),
  ).executeTakeFirst();
  return row && toRecording(row);
}

export async function updateRecording(tx: TxHandle, r: Recording): Promise<void> {
  const { session_id, tenant_id, mode, ...changes } = toRow(r);
  await tx.db.updateTable('recordings').set(changes).where('session_id', '=', session_id).execute();
}

export async function insertChunk(tx: TxHandle, row: RecordingChunkRow): Promise<void> {
  await tx.db.insertInto('recording_chunks').values(row).execute();
}

/** One chunk of a session's recording. */
export async function findChunk(
  h: StoreHandle,
  sessionId: string,
  seq: number,
): Promise<RecordingChunkRow | undefined> {
  return h.db
    .selectFrom('recording_chunks')
    .selectAll()
    .where('session_id', '=', sessionId)
    .where('seq', '=', seq)
    .executeTakeFirst();
}

/** A tenant's recordings, in session order (a page after `afterSessionId`). */
export async function readRecordingPage(
  h: StoreHandle,
  tenantId: string,
  afterSessionId: string | undefined,
  limit: number,
): Promise<Recording[]> {
  let query = h.db.selectFrom('recordings').selectAll().where('tenant_id', '=', tenantId);
  if (afterSessionId !== undefined) query = query.where('session_id', '>', afterSessionId);
  return (await query.orderBy('session_id').limit(limit).execute()).map(toRecording);
}

/** A session's chunks, in order. */
export async function listChunks(
  h: StoreHandle,
  tenantId: string,
  sessionId: string,
): Promise<RecordingChunkRow[]> {
  return h.db
    .selectFrom('recording_chunks')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('session_id', '=', sessionId)
    .orderBy('seq')
    .execute();
}

/** A page of a tenant's chunks (session and position only, with the text), in (session, seq) order. */
export async function readChunkPage(
  h: StoreHandle,
  tenantId: string,
  after: { sessionId: string; seq: number } | undefined,
  limit: number,
): Promise<RecordingChunkRow[]> {
  let query = h.db.selectFrom('recording_chunks').selectAll().where('tenant_id', '=', tenantId);
  if (after)
    query = query.where((eb) =>
      eb.or([
        eb('session_id', '>', after.sessionId),
        eb.and([eb('session_id', '=', after.sessionId), eb('seq', '>', after.seq)]),
      ]),
    );
  return query.orderBy('session_id').orderBy('seq').limit(limit).execute();
}

/**
 * Recordings whose next chunk is overdue at `now`, across tenants, oldest first: their sessions
 * end, or (already ended another way) stop being watched.
 */
export async function listOverdueRecordings(
  h: StoreHandle,
  now: number,
  limit: number,
): Promise<Recording[]> {
  const rows = await h.db
    .selectFrom('recordings')
    .selectAll()
    .where('due_at', 'is not', null)
    .where('due_at', '<=', now)
    .orderBy('due_at')
    .limit(limit)
    .execute();
  return rows.map(toRecording);
}

/** Stops watching a recording: complete, or its session has ended. */
export async function clearRecordingDue(tx: TxHandle, sessionId: string, now: number): Promise<void> {
  await tx.db
    .updateTable('recordings')
    .set({ due_at: null, updated_at: now })
    .where('session_id', '=', sessionId)
    .execute();
}
