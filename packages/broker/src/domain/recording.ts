import { createHash } from 'node:crypto';

/** Whether a privilege's sessions must run recorded, and what is recorded. */
export const RECORDING_MODES = ['none', 'output', 'input_and_output'] as const;
export type RecordingMode = (typeof RECORDING_MODES)[number];
/** The mode of a session that runs recorded. */
export type RecordedMode = Exclude<RecordingMode, 'none'>;

/** What the broker holds of one session's recording (the chunks themselves are apart). */
export interface Recording {
  sessionId: string;
  tenantId: string;
  mode: RecordedMode;
  chunks: number;
  bytes: number;
  /** Time of the last event, microseconds from the recording's start: events never go back. */
  lastTimeUs: number;
  /** SHA-256 chained over every chunk's hash in order ({@link nextDigest}). */
  digest: string;
  complete: boolean;
  /** The next chunk must arrive by then or the session ends; null once complete or ended. */
  dueAt: number | null;
  updatedAt: number;
}

/** The digest of a recording without chunks. */
export const EMPTY_RECORDING_DIGEST = '0'.repeat(64);

/** Hex SHA-256 of a chunk's text, as its proof states and the audit chain records. */
export function chunkHash(data: string): string {
  return createHash('sha256').update(data, 'utf8').digest('hex');
}

/**
 * The digest after one more chunk: H(previous digest ‖ chunk hash). One value that names the
 * whole recording in order, for the session's evidence: any change to any chunk changes it.
 */
export function nextDigest(previous: string, chunkSha256: string): string {
  return createHash('sha256').update(`${previous}${chunkSha256}`, 'utf8').digest('hex');
}

/** The audit action of an accepted chunk; its details carry `seq` and `sha256`. */
export const CHUNK_AUDIT_ACTION = 'session.recording_chunk';
