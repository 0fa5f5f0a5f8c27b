import { DECISION_BATCH_MAX, DECISION_FIELD_MAX, type DecisionRecord } from '@tether-broker/protocol';
import type { BrokerLink } from './broker-link.js';
import type { PepLogger } from './logger.js';

export interface DecisionRecorderOptions {
  link: BrokerLink;
  log: PepLogger;
  /**
   * The audience this PEP enforces, sent with every batch: the broker records decisions only
   * for an audience an admin set for the PEP's principal, about sessions granted for it.
   */
  audience: string;
  /** Decisions held while waiting to be sent; when full, new ones are dropped and counted. Default 10 000. */
  bufferSize?: number;
  /** Decisions per `POST /v1/decisions`. Default 500 (the broker takes at most 1000). */
  batchSize?: number;
  /** How often the buffer is sent (real time). Default 1 s. */
  flushIntervalMs?: number;
}

export const DECISION_RECORDER_DEFAULTS = Object.freeze({
  bufferSize: 10_000,
  batchSize: 500,
  flushIntervalMs: 1000,
});

export type { DecisionRecord };

// The broker's limits on one decision's text fields; longer text is cut, never refused whole.
const MAX = DECISION_FIELD_MAX;
/** A batch stays well within the broker's default 256 KiB body limit. */
const MAX_BATCH_BYTES = 192 * 1024;

/**
 * Sends the PEP's decisions to the broker's audit trail in batches, from a bounded buffer.
 * `record` never waits and never throws: a request is never slowed or failed by recording. When
 * the buffer is full (broker unreachable for long), new decisions are dropped and counted; the
 * count travels with the next batch that gets through (`dropped`), so the broker reports the
 * loss instead of the trail silently missing entries. A batch the broker refuses for being
 * malformed is dropped and counted too; one that fails in transit goes back to the buffer.
 */
export class DecisionRecorder {
  readonly #link: BrokerLink;
  readonly #log: PepLogger;
  readonly #audience: string;
  readonly #bufferSize: number;
  readonly #batchSize: number;
  readonly #buffer: DecisionRecord[] = [];
  readonly #timer: NodeJS.Timeout;
  /** Dropped and not yet reported to the broker. */
  #unreported = 0;
  #droppedTotal = 0;
  #sentTotal = 0;
  #flushing: Promise<void> | undefined;

  constructor(options: DecisionRecorderOptions) {
    this.#link = options.link;
    this.#log = options.log;
    this.#audience = options.audience;
    this.#bufferSize = options.bufferSize ?? DECISION_RECORDER_DEFAULTS.bufferSize;
    this.#batchSize = Math.min(DECISION_BATCH_MAX, options.batchSize ?? DECISION_RECORDER_DEFAULTS.batchSize);
    this.#timer = setInterval(
      () => void this.flush(),
      options.flushIntervalMs ?? DECISION_RECORDER_DEFAULTS.flushIntervalMs,
    );
    this.#timer.unref();
  }

  /** Queues a decision; O(1), never blocks. */
  record(decision: DecisionRecord): void {
    if (this.#buffer.length >= this.#bufferSize) {
      this.#unreported++;
      this.#droppedTotal++;
      return;
    }
    this.#buffer.push(trim(decision));
  }

  /** Counters for health and metrics. */
  get stats(): { buffered: number; sent: number; dropped: number; unreported: number } {
    return {
      buffered: this.#buffer.length,
      sent: this.#sentTotal,
      dropped: this.#droppedTotal,
      unreported: this.#unreported,
    };
  }

  /** Sends everything buffered now (one batch after another); concurrent calls share one run. */
  flush(): Promise<void> {
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  /** Stops the timer and sends what is left (best effort). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }

  async #drain(): Promise<void> {
    while (this.#buffer.length > 0 || this.#unreported > 0) {
      const batch = this.#buffer.splice(0, this.#batchLength());
      const dropped = this.#unreported;
      this.#unreported = 0;
      try {
        if (batch.length === 0) {
          // Only a loss to report: the broker wants at least one decision per batch, so wait
          // for the next one rather than invent one.
          this.#unreported += dropped;
          return;
        }
        await this.#link.postJson('/v1/decisions', { audience: this.#audience, decisions: batch, dropped });
        this.#sentTotal += batch.length;
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (status !== undefined && status >= 400 && status < 500 && status !== 401 && status !== 429) {
          // The broker will never take this batch: count it as lost and say so.
          this.#unreported += dropped + batch.length;
          this.#droppedTotal += batch.length;
          this.#log.error({ status, decisions: batch.length }, 'the broker refused a decision batch');
        } else {
          this.#unreported += dropped;
          this.#requeue(batch);
          this.#log.warn({ err: (err as Error).message }, 'decisions not delivered; will retry');
        }
        return;
      }
    }
  }

  /** How many buffered decisions fit in one batch, by count and by size. */
  #batchLength(): number {
    let bytes = 64;
    let n = 0;
    while (n < this.#buffer.length && n < this.#batchSize) {
      bytes += JSON.stringify(this.#buffer[n]).length + 1;
      if (bytes > MAX_BATCH_BYTES && n > 0) break;
      n++;
    }
    return n;
  }

  /** Puts a batch back at the front, dropping (and counting) what no longer fits. */
  #requeue(batch: DecisionRecord[]): void {
    const room = this.#bufferSize - this.#buffer.length;
    const kept = batch.slice(0, Math.max(0, room));
    const lost = batch.length - kept.length;
    this.#buffer.unshift(...kept);
    this.#unreported += lost;
    this.#droppedTotal += lost;
  }
}

function trim(d: DecisionRecord): DecisionRecord {
  return {
    at: d.at,
    allow: d.allow,
    code: d.code.slice(0, MAX.code),
    // The broker takes no empty text: a request refused before it named one still gets recorded.
    action: d.action.slice(0, MAX.action) || '-',
    resource: d.resource.slice(0, MAX.resource) || '-',
    session: d.session === null ? null : d.session.slice(0, MAX.session),
    ...(d.method === undefined ? {} : { method: d.method.slice(0, MAX.method) }),
    ...(d.path === undefined ? {} : { path: d.path.slice(0, MAX.path) }),
  };
}
