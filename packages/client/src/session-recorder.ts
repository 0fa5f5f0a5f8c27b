import { createHash } from 'node:crypto';
import { type CastEvent, formatCastEvent, formatCastHeader } from '@tether-broker/protocol';
import { CompactSign } from 'jose/jws/compact/sign';
import { BrokerError } from './broker-client.js';
import type { BoundSession } from './session.js';

/** The `typ` of a chunk's proof (the broker refuses any other). */
export const RECORDING_PROOF_TYP = 'tether-recording+jwt';

export interface RecorderOptions {
  /** Called once when the recording cannot be delivered: the session must not run on unrecorded. */
  onLost: (why: string) => void;
  /** Called after each chunk the broker took (to resume a paused source, say). */
  onSent?: () => void;
  /** How often buffered events are sent. */
  flushIntervalMs?: number;
  /** An empty chunk (a heartbeat) after this long without one. Default: a third of the lapse. */
  heartbeatMs?: number;
  /** A chunk not delivered for this long (retried meanwhile) loses the recording. Default: half the lapse. */
  deliveryDeadlineMs?: number;
  /** Milliseconds, monotonic: event times and deadlines. */
  now?: () => number;
}

/**
 * Streams a recorded session's recording to the broker as asciicast v2, while it runs: events
 * are buffered and sent in chunks, each signed by the session key over its position and hash
 * (so no one without that key can add to it, and the broker chains every hash into its audit
 * trail); silence is covered by heartbeats, because the broker ends a recorded session whose
 * recording lapses. One chunk is in flight at a time, in order. A chunk that cannot be
 * delivered within the deadline, or that the broker refuses, loses the recording: `onLost` is
 * called and the holder must stop what runs.
 */
export class SessionRecorder {
  readonly #session: BoundSession;
  readonly #options: Required<Omit<RecorderOptions, 'onSent'>> & Pick<RecorderOptions, 'onSent'>;
  readonly #mode: 'output' | 'input_and_output';
  readonly #maxChunkBytes: number;
  #lines: string[] = [];
  #bytes = 0;
  #seq = 0;
  #startedAt = 0;
  #lastSentAt = 0;
  #failingSince: number | undefined;
  #inFlight: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lost = false;
  #closed = false;

  constructor(session: BoundSession, options: RecorderOptions) {
    const plan = session.info.recording;
    if (!plan) throw new Error(`session ${session.info.id} does not run recorded`);
    const lapseMs = plan.lapse_seconds * 1000;
    this.#session = session;
    this.#mode = plan.mode;
    // Room for the JSON the line sits in, whatever the broker allows.
    this.#maxChunkBytes = plan.max_chunk_bytes;
    this.#options = {
      flushIntervalMs: 1000,
      heartbeatMs: Math.min(10_000, lapseMs / 3),
      deliveryDeadlineMs: Math.min(15_000, lapseMs / 2),
      now: () => performance.now(),
      ...options,
    };
  }

  /** Whether keystrokes are recorded (the privilege says so). */
  get recordsInput(): boolean {
    return this.#mode === 'input_and_output';
  }

  /** Bytes buffered and not yet taken by the broker. */
  get backlog(): number {
    return this.#bytes;
  }

  get lost(): boolean {
    return this.#lost;
  }

  /** Starts the recording: its header, then a send every flush interval. */
  start(width: number, height: number, env: Record<string, string> = {}): void {
    this.#startedAt = this.#options.now();
    this.#lastSentAt = this.#startedAt;
    this.#push(
      formatCastHeader({
        version: 2,
        width,
        height,
        timestamp: Math.floor(this.#session.now() / 1000),
        ...(Object.keys(env).length > 0 ? { env } : {}),
      }),
    );
    this.#timer = setInterval(() => this.#tick(), this.#options.flushIntervalMs);
    this.#timer.unref?.();
    this.#tick();
  }

  output(data: string): void {
    this.#event('o', data);
  }

  /** A keystroke (or paste): recorded only when the privilege records input. */
  input(data: string): void {
    if (this.recordsInput) this.#event('i', data);
  }

  resize(width: number, height: number): void {
    this.#event('r', `${width}x${height}`);
  }

  /**
   * Sends what is buffered as the final chunk. Resolves true once the broker has the whole
   * recording; false if it was lost (then `onLost` has been called).
   */
  async close(): Promise<boolean> {
    if (this.#closed) return !this.#lost;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#inFlight;
    for (;;) {
      if (this.#lost) return false;
      // The final chunk is the one that takes the rest (an empty one when nothing is left).
      const last = this.#takeChunk().lines === this.#lines.length;
      await this.#sendNext(last);
      if (this.#lost) return false;
      if (this.#failingSince !== undefined) await new Promise((resolve) => setTimeout(resolve, 250));
      else if (last) return true;
    }
  }

  /** Stops sending without a final chunk (the holder is going away). */
  dispose(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }

  #event(code: CastEvent[1], data: string): void {
    if (this.#closed || this.#lost || data === '') return;
    const time = (this.#options.now() - this.#startedAt) / 1000;
    const line = formatCastEvent([time, code, data]);
    // One event must fit a chunk: a long burst of output is split into several events.
    if (Buffer.byteLength(line) > this.#maxChunkBytes && data.length > 1) {
      const half = Math.floor(data.length / 2);
      // Never between the two halves of a surrogate pair.
      const cut = /[\uD800-\uDBFF]/.test(data[half - 1] ?? '') ? half + 1 : half;
      this.#event(code, data.slice(0, cut));
      this.#event(code, data.slice(cut));
      return;
    }
    this.#push(line);
    // Plenty buffered: send without waiting for the next flush.
    if (this.#bytes >= this.#maxChunkBytes / 2) this.#tick();
  }

  #push(line: string): void {
    this.#lines.push(line);
    this.#bytes += Buffer.byteLength(line);
  }

  /** How many buffered lines make the next chunk, and its text. */
  #takeChunk(): { lines: number; data: string } {
    let bytes = 0;
    let count = 0;
    for (const line of this.#lines) {
      const size = Buffer.byteLength(line);
      if (count > 0 && bytes + size > this.#maxChunkBytes) break;
      bytes += size;
      count += 1;
    }
    return { lines: count, data: this.#lines.slice(0, count).join('') };
  }

  #tick(): void {
    if (this.#inFlight || this.#lost || this.#closed) return;
    const now = this.#options.now();
    if (this.#lines.length === 0 && now - this.#lastSentAt < this.#options.heartbeatMs) return;
    this.#inFlight = this.#sendNext(false).finally(() => {
      this.#inFlight = undefined;
      if (
        this.#lines.length > 0 &&
        this.#failingSince === undefined &&
        this.#bytes >= this.#maxChunkBytes / 2
      )
        this.#tick();
    });
  }

  async #sendNext(final: boolean): Promise<void> {
    const chunk = this.#takeChunk();
    try {
      const proof = await new CompactSign(
        new TextEncoder().encode(
          JSON.stringify({
            sid: this.#session.info.id,
            seq: this.#seq,
            sha256: createHash('sha256').update(chunk.data, 'utf8').digest('hex'),
            iat: Math.floor(this.#session.now() / 1000),
            ...(final ? { final: true } : {}),
          }),
        ),
      )
        .setProtectedHeader({
          alg: this.#session.key.alg,
          typ: RECORDING_PROOF_TYP,
          jwk: this.#session.key.publicJwk,
        })
        .sign(this.#session.key.privateKey);
      await this.#session.sendRecordingChunk({ proof, data: chunk.data });
    } catch (err) {
      this.#failed(err);
      return;
    }
    // A heartbeat is not stored and takes no position.
    if (chunk.data !== '' || final) this.#seq += 1;
    this.#lines.splice(0, chunk.lines);
    this.#bytes -= Buffer.byteLength(chunk.data);
    this.#failingSince = undefined;
    this.#lastSentAt = this.#options.now();
    this.#options.onSent?.();
  }

  #failed(err: unknown): void {
    // The broker refused the chunk itself (the session ended, the recording is too large, …):
    // sending it again changes nothing.
    if (
      err instanceof BrokerError &&
      err.status >= 400 &&
      err.status < 500 &&
      ![408, 429].includes(err.status)
    ) {
      this.#lose(`the broker refused it (${err.code}: ${err.message})`);
      return;
    }
    const now = this.#options.now();
    this.#failingSince ??= now;
    if (now - this.#failingSince >= this.#options.deliveryDeadlineMs)
      this.#lose(
        `the broker did not take it for ${Math.round(this.#options.deliveryDeadlineMs / 1000)}s (${err instanceof Error ? err.message : String(err)})`,
      );
  }

  #lose(why: string): void {
    if (this.#lost) return;
    this.#lost = true;
    clearInterval(this.#timer);
    this.#options.onLost(why);
  }
}
