import type { BrokerContext } from '../core/context.js';
import { endSessionIn } from '../core/end-session.js';
import { isLive } from '../domain/session.js';
import { inTransaction } from '../store/database.js';
import { clearRecordingDue, listOverdueRecordings, lockRecording } from '../store/repositories/recordings.js';
import { lockSession } from '../store/repositories/sessions.js';

/**
 * Ends every live session whose recording has lapsed (`recording_lapsed`): no chunk, not even a
 * heartbeat, arrived within the lapse, so the recorder is gone (killed, cut off from the
 * broker, never started) and the session would run unrecorded. Recordings of sessions that
 * ended another way stop being watched. Returns how many sessions ended.
 */
export async function endLapsedRecordings(ctx: BrokerContext, batch = 200): Promise<number> {
  let total = 0;
  for (;;) {
    const now = ctx.clock.now();
    const overdue = await listOverdueRecordings(ctx.store, now, batch);
    for (const candidate of overdue) {
      const ended = await inTransaction(ctx.store, async (tx) => {
        const session = await lockSession(tx, candidate.sessionId);
        const recording = await lockRecording(tx, candidate.sessionId);
        // Read again under the locks: a chunk may have just arrived.
        if (!recording || recording.dueAt === null || recording.dueAt > now) return false;
        await clearRecordingDue(tx, candidate.sessionId, now);
        if (!session || !isLive(session, now)) return false;
        const done = await endSessionIn(ctx, tx, session, now, 'recording_lapsed', null, {
          recording: {
            chunks: recording.chunks,
            last_chunk_at:
              recording.chunks === 0 && recording.updatedAt === session.activatedAt
                ? null
                : recording.updatedAt,
            lapse_seconds: ctx.config.limits.recordingLapseSeconds,
          },
        });
        return done !== null;
      });
      if (ended) total += 1;
    }
    if (overdue.length < batch) return total;
  }
}
