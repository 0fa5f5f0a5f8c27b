import { checkCastChunk, TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { assertSessionVisible, requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { endSessionIn } from '../core/end-session.js';
import {
  CHUNK_AUDIT_ACTION,
  chunkHash,
  EMPTY_RECORDING_DIGEST,
  nextDigest,
  type Recording,
} from '../domain/recording.js';
import { isLive, type Session } from '../domain/session.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import {
  clearRecordingDue,
  findChunk,
  findRecording,
  insertChunk,
  listChunks,
  lockRecording,
  updateRecording,
} from '../store/repositories/recordings.js';
import { findSession, lockSession } from '../store/repositories/sessions.js';
import { type ChunkClaims, verifyChunkProof } from './chunk-proof.js';

/**
 * How long after its session ended a recording still takes chunks: the tail the recorder wrote
 * while the command was being stopped. Nothing after it: a recording is evidence of a session,
 * not a place to keep adding to.
 */
export const TAIL_AFTER_END_MS = 60_000;

/** Until when a session's recording takes chunks: its end (or hard expiry) plus the tail. */
function takesChunksUntil(session: Session): number {
  return Math.min(session.endedAt ?? session.hardExpiresAt, session.hardExpiresAt) + TAIL_AFTER_END_MS;
}

/**
 * The session's holder adds the next chunk of its recording. The proof must be signed by the
 * key the session is bound to and state this session, the next position and the data's hash;
 * the data must continue the asciicast recording (header first, time never going back, input
 * only where the privilege records it). An empty chunk is a heartbeat: it keeps the session's
 * recording from lapsing and is not stored. Each stored chunk's hash enters the audit chain in
 * the same transaction, so `audit verify` detects a chunk edited, removed or slipped in later.
 */
export async function acceptChunk(
  ctx: BrokerContext,
  caller: Caller,
  sessionId: string,
  body: { proof: string; data: string },
): Promise<Recording> {
  const session = await findSession(ctx.store, caller.tenant.id, sessionId);
  assertSessionVisible(session, caller, sessionId);
  if (session.principalId !== caller.principal.id)
    throw new TetherError('forbidden', "only the session's holder may add to its recording");
  const limits = ctx.config.limits;
  const bytes = Buffer.byteLength(body.data, 'utf8');
  if (bytes > limits.recordingChunkBytes)
    throw new TetherError(
      'payload_too_large',
      `a recording chunk holds at most ${limits.recordingChunkBytes} bytes`,
    );
  const claims = await verifyChunkProof(body.proof);
  if (claims.jkt !== session.jkt)
    throw new TetherError(
      'invalid_signature',
      'the recording chunk is not signed by the key the session is bound to',
    );
  if (claims.sid !== session.id)
    throw new TetherError('invalid_request', 'the recording chunk proof names another session');
  if (claims.sha256 !== chunkHash(body.data))
    throw new TetherError(
      'invalid_request',
      "the recording chunk's data does not match the hash its proof states",
    );
  const now = ctx.clock.now();
  const window = ctx.config.dpopIatWindowSeconds + ctx.config.clockToleranceSeconds;
  if (Math.abs(claims.iat - now / 1000) > window)
    throw new TetherError(
      'invalid_request',
      `the recording chunk proof's iat is more than ${window} s from now`,
    );

  const outcome = await inTransaction(ctx.store, (tx) =>
    appendChunk(ctx, tx, caller, claims, body.data, now),
  );
  if (outcome === 'over_limit')
    throw new TetherError(
      'recording_too_large',
      `a session's recording holds at most ${limits.recordingBytesPerSession} bytes in ${limits.recordingChunksPerSession} chunks; session ${session.id} has ended`,
    );
  return outcome;
}

/** The latest event time a session's recording may state: its longest run, and some slack. */
function maxEventSeconds(session: Session): number {
  return (session.hardExpiresAt - session.activatedAt) / 1000 + TAIL_AFTER_END_MS / 1000;
}

/** The write half of {@link acceptChunk}, under the session's and the recording's locks. */
async function appendChunk(
  ctx: BrokerContext,
  tx: TxHandle,
  caller: Caller,
  claims: ChunkClaims,
  data: string,
  now: number,
): Promise<Recording | 'over_limit'> {
  const limits = ctx.config.limits;
  const session = await lockSession(tx, claims.sid);
  const recording = await lockRecording(tx, claims.sid);
  if (!session || !recording)
    throw new TetherError('invalid_request', `session ${claims.sid} does not run recorded`);
  if (now > takesChunksUntil(session))
    throw new TetherError('session_not_live', `session ${session.id} has ended; its recording is closed`);
  // The last chunk sent again because its answer was lost: taken already, answered as then.
  if (
    claims.seq === recording.chunks - 1 &&
    (await findChunk(tx, session.id, claims.seq))?.sha256 === claims.sha256
  )
    return recording;
  if (recording.complete)
    throw new TetherError('recording_complete', `the recording of session ${session.id} is complete`);
  if (claims.seq !== recording.chunks)
    throw new TetherError(
      'recording_out_of_order',
      `the recording expects chunk ${recording.chunks}, this proof is for chunk ${claims.seq}`,
    );
  // Heartbeats keep a recording alive, never stand in for one: it starts with its header.
  if (recording.chunks === 0 && data === '')
    throw new TetherError(
      'invalid_request',
      'a recording starts with its asciicast header: chunk 0 cannot be empty',
    );
  const live = isLive(session, now);
  const dueAt = live && !claims.final ? now + limits.recordingLapseSeconds * 1000 : null;
  // A heartbeat: nothing to keep, the recorder is alive.
  if (data === '' && !claims.final) {
    const next = { ...recording, dueAt, updatedAt: now };
    await updateRecording(tx, next);
    return next;
  }
  const bytes = Buffer.byteLength(data, 'utf8');
  if (
    recording.bytes + bytes > limits.recordingBytesPerSession ||
    recording.chunks >= limits.recordingChunksPerSession
  ) {
    // It cannot be recorded any further, so it cannot go on: ended with the refusal.
    await clearRecordingDue(tx, session.id, now);
    if (live)
      await endSessionIn(ctx, tx, session, now, 'recording_lapsed', null, {
        recording: { chunks: recording.chunks, bytes: recording.bytes, why: 'size_limit' },
      });
    return 'over_limit';
  }
  const cast = checkCastChunk(data, {
    first: recording.chunks === 0,
    allowInput: recording.mode === 'input_and_output',
    lastTime: recording.lastTimeUs / 1e6,
  });
  if (cast.lastTime > maxEventSeconds(session))
    throw new TetherError(
      'invalid_request',
      'an event of the recording chunk lies past the end the session could have',
    );
  await insertChunk(tx, {
    session_id: session.id,
    seq: claims.seq,
    tenant_id: session.tenantId,
    data,
    sha256: claims.sha256,
    received_at: now,
  });
  const next: Recording = {
    ...recording,
    chunks: recording.chunks + 1,
    bytes: recording.bytes + bytes,
    lastTimeUs: Math.round(cast.lastTime * 1e6),
    digest: nextDigest(recording.digest, claims.sha256),
    complete: claims.final,
    dueAt,
    updatedAt: now,
  };
  await updateRecording(tx, next);
  await recordAudit(tx, session.tenantId, now, {
    actor: caller.principal.id,
    action: CHUNK_AUDIT_ACTION,
    target: session.id,
    outcome: 'success',
    requestId: session.requestId,
    ticket: session.ticket,
    principalId: session.principalId,
    details: {
      seq: claims.seq,
      sha256: claims.sha256,
      bytes,
      events: cast.events,
      digest: next.digest,
      ...(claims.final ? { final: true } : {}),
    },
  });
  // The final chunk closes the recording, and with it the session: a live session whose
  // recording can take nothing more would run on unrecorded.
  if (claims.final && live)
    await endSessionIn(ctx, tx, session, now, 'completed', caller.principal.id, { recording: 'final chunk' });
  return next;
}

/** A session's whole recording, for auditors and admins. */
export async function readRecording(
  ctx: BrokerContext,
  caller: Caller,
  sessionId: string,
): Promise<{ recording: Recording; cast: string; intact: boolean }> {
  requireRole(caller, 'admin', 'auditor');
  const recording = await findRecording(ctx.store, caller.tenant.id, sessionId);
  if (!recording) throw new TetherError('not_found', `session ${JSON.stringify(sessionId)} has no recording`);
  const chunks = await listChunks(ctx.store, caller.tenant.id, sessionId);
  // What is served is checked against the digest recorded as it arrived (itself checked against
  // the audit chain by `audit verify`): a chunk changed in the store shows here as not intact.
  let digest = EMPTY_RECORDING_DIGEST;
  chunks.forEach((c, i) => {
    digest = Number(c.seq) === i ? nextDigest(digest, chunkHash(c.data)) : 'out of order';
  });
  const intact = chunks.length === recording.chunks && digest === recording.digest;
  return { recording, cast: chunks.map((c) => c.data).join(''), intact };
}
