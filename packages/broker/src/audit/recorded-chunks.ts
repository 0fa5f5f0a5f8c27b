import { CHUNK_AUDIT_ACTION, chunkHash, EMPTY_RECORDING_DIGEST, nextDigest } from '../domain/recording.js';
import type { StoreHandle } from '../store/database.js';
import { readChunkPage, readRecordingPage } from '../store/repositories/recordings.js';
import type { RecordingChunkRow } from '../store/schema.js';
import type { AuditRecord } from './chain.js';
import type { ChainVerification } from './verify.js';

const PAGE = 500;
type Fault = NonNullable<ChainVerification['firstBad']>;

/** What the audit chain says one session's recording holds. */
interface ChainedRecording {
  chunks: number;
  digest: string;
  final: boolean;
  /** The chain's record of the first chunk (named when the whole recording is gone). */
  firstRecord: { seq: number; id: string };
}

/** Reads the chain's chunk records of one session again: `seq` → (hash, record). */
export type ChunkRecordsOf = (
  sessionId: string,
) => Promise<Map<number, { sha256: string; seq: number; id: string }>>;

/** The chunk fields of a chunk record, or undefined for any other record. */
export function chunkRecordOf(
  record: AuditRecord,
): { seq: number; sha256: string; final: boolean } | undefined {
  if (record.action !== CHUNK_AUDIT_ACTION || record.outcome !== 'success') return undefined;
  const { seq, sha256, final } = record.details as { seq?: unknown; sha256?: unknown; final?: unknown };
  if (typeof seq !== 'number' || typeof sha256 !== 'string') return undefined;
  return { seq, sha256, final: final === true };
}

/**
 * Session recordings checked against the audit chain. Every chunk's SHA-256 was written into
 * the chain with it, and each recorded session's activation says it must be recorded; the
 * chain is authenticated, so what it says a recording holds is what it held. While the chain is
 * walked this keeps, per recorded session, the digest of its chunks in order (memory grows with
 * the number of recorded sessions, not chunks); `compare` then recomputes the same from the
 * stored chunks and recordings, session by session, and names the first that differs: a chunk
 * edited, removed or slipped in, a recording's summary rewritten, or a recording gone.
 */
export class RecordedChunks {
  readonly #chained = new Map<string, ChainedRecording>();
  readonly #required = new Map<string, { seq: number; id: string }>();

  /** Notes the chunk and activation records among `records` (records of a verified chain only). */
  note(records: readonly AuditRecord[]): void {
    for (const record of records) {
      if (record.action === 'session.activated' && typeof record.details.recording === 'string') {
        this.#required.set(record.target, { seq: record.seq, id: record.id });
        continue;
      }
      const chunk = chunkRecordOf(record);
      if (!chunk) continue;
      const known = this.#chained.get(record.target) ?? {
        chunks: 0,
        digest: EMPTY_RECORDING_DIGEST,
        final: false,
        firstRecord: { seq: record.seq, id: record.id },
      };
      // Chunk records are in chain order, which is the recording's order (one writer per session).
      known.chunks += 1;
      known.digest = nextDigest(known.digest, chunk.sha256);
      known.final ||= chunk.final;
      this.#chained.set(record.target, known);
    }
  }

  /** The first stored chunk or recording that does not match the chain, or undefined when all do. */
  async compare(h: StoreHandle, tenantId: string, recordsOf: ChunkRecordsOf): Promise<Fault | undefined> {
    return (
      (await this.#compareChunks(h, tenantId, recordsOf)) ?? (await this.#compareRecordings(h, tenantId))
    );
  }

  async #compareChunks(
    h: StoreHandle,
    tenantId: string,
    recordsOf: ChunkRecordsOf,
  ): Promise<Fault | undefined> {
    const seen = new Set<string>();
    let current: { sessionId: string; chunks: number; digest: string; first: RecordingChunkRow } | undefined;
    const finish = async () => {
      if (!current) return undefined;
      seen.add(current.sessionId);
      const chained = this.#chained.get(current.sessionId);
      if (chained && chained.chunks === current.chunks && chained.digest === current.digest) return undefined;
      return nameTheChunk(h, tenantId, current.sessionId, await recordsOf(current.sessionId));
    };
    let after: { sessionId: string; seq: number } | undefined;
    for (;;) {
      const page = await readChunkPage(h, tenantId, after, PAGE);
      for (const chunk of page) {
        if (current?.sessionId !== chunk.session_id) {
          const fault = await finish();
          if (fault) return fault;
          current = { sessionId: chunk.session_id, chunks: 0, digest: EMPTY_RECORDING_DIGEST, first: chunk };
        }
        current.chunks += 1;
        current.digest = nextDigest(current.digest, chunkHash(chunk.data));
      }
      if (page.length < PAGE) break;
      const last = page[page.length - 1] as RecordingChunkRow;
      after = { sessionId: last.session_id, seq: Number(last.seq) };
    }
    const fault = await finish();
    if (fault) return fault;
    for (const [sessionId, chained] of this.#chained) {
      if (seen.has(sessionId)) continue;
      return {
        ...chained.firstRecord,
        fault: 'recording_missing',
        message: `chunk 0 of session ${sessionId}'s recording is missing: all ${chained.chunks} chunks the audit chain records are gone`,
      };
    }
    return undefined;
  }

  async #compareRecordings(h: StoreHandle, tenantId: string): Promise<Fault | undefined> {
    const seen = new Set<string>();
    for (let after: string | undefined; ; ) {
      const page = await readRecordingPage(h, tenantId, after, PAGE);
      for (const recording of page) {
        seen.add(recording.sessionId);
        const activation = this.#required.get(recording.sessionId);
        const chained = this.#chained.get(recording.sessionId);
        const where = `the recording of session ${recording.sessionId}`;
        if (!activation)
          return {
            seq: 0,
            id: '',
            fault: 'recording_unrecorded',
            message: `${where} has no activation in the audit chain that required it (added to the store afterwards)`,
          };
        if (
          recording.chunks !== (chained?.chunks ?? 0) ||
          recording.digest !== (chained?.digest ?? EMPTY_RECORDING_DIGEST) ||
          recording.complete !== (chained?.final ?? false)
        )
          return {
            ...activation,
            fault: 'recording_edited',
            message: `${where} was modified after it was written: its chunks, digest or completion differ from the audit chain`,
          };
      }
      if (page.length < PAGE) break;
      after = (page[page.length - 1] as (typeof page)[number]).sessionId;
    }
    for (const [sessionId, activation] of this.#required) {
      if (seen.has(sessionId)) continue;
      return {
        ...activation,
        fault: 'recording_missing',
        message: `the recording of session ${sessionId} is missing: its activation (audit record ${activation.seq}) required one`,
      };
    }
    return undefined;
  }
}

/**
 * A session whose stored chunks differ from the chain: reads them against the chain's record of
 * each and names the first that differs (edited, slipped in, or missing).
 */
async function nameTheChunk(
  h: StoreHandle,
  tenantId: string,
  sessionId: string,
  chained: Map<number, { sha256: string; seq: number; id: string }>,
): Promise<Fault> {
  const where = (seq: number) => `chunk ${seq} of session ${sessionId}'s recording`;
  const stored = new Set<number>();
  let after: { sessionId: string; seq: number } = { sessionId, seq: -1 };
  for (;;) {
    const page = (await readChunkPage(h, tenantId, after, PAGE)).filter((c) => c.session_id === sessionId);
    for (const chunk of page) {
      const seq = Number(chunk.seq);
      stored.add(seq);
      const record = chained.get(seq);
      if (!record)
        return {
          seq: 0,
          id: '',
          fault: 'recording_unrecorded',
          message: `${where(seq)} has no record in the audit chain (added to the store afterwards)`,
        };
      if (chunkHash(chunk.data) !== record.sha256)
        return {
          seq: record.seq,
          id: record.id,
          fault: 'recording_edited',
          message: `${where(seq)} was modified after it was written (audit record ${record.seq} has its hash)`,
        };
    }
    if (page.length < PAGE) break;
    after = { sessionId, seq: Number((page[page.length - 1] as RecordingChunkRow).seq) };
  }
  const missing = [...chained.keys()].sort((a, b) => a - b).find((seq) => !stored.has(seq));
  const record = missing === undefined ? undefined : chained.get(missing);
  return {
    seq: record?.seq ?? 0,
    id: record?.id ?? '',
    fault: 'recording_missing',
    message:
      missing === undefined
        ? `session ${sessionId}'s recording differs from the audit chain`
        : `${where(missing)} is missing (audit record ${record?.seq} has its hash)`,
  };
}
