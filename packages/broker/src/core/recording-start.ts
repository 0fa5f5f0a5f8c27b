import { EMPTY_RECORDING_DIGEST, type RecordedMode } from '../domain/recording.js';
import type { Session } from '../domain/session.js';
import type { TxHandle } from '../store/database.js';
import { insertRecording } from '../store/repositories/recordings.js';
import type { BrokerContext } from './context.js';

type RecordingSettings = Pick<BrokerContext['config']['limits'], 'recordingLapseSeconds'>;

/**
 * Opens the recording of a session just started, in its activation transaction: the first chunk
 * is due within the lapse, as every later one is after the one before.
 */
export async function startRecording(
  ctx: { config: { limits: RecordingSettings } },
  tx: TxHandle,
  session: Session,
  mode: RecordedMode,
  now: number,
): Promise<void> {
  await insertRecording(tx, {
    sessionId: session.id,
    tenantId: session.tenantId,
    mode,
    chunks: 0,
    bytes: 0,
    lastTimeUs: 0,
    digest: EMPTY_RECORDING_DIGEST,
    complete: false,
    dueAt: now + ctx.config.limits.recordingLapseSeconds * 1000,
    updatedAt: now,
  });
}
