import { nextPendingJob } from '../store/repositories/reevaluation-jobs.js';
import { BATCH_LIMITS, type BatchLimits, type EvaluationContext, runReevaluationBatch } from './jobs.js';

/** PostgreSQL aborts one of two deadlocked or conflicting transactions; the batch is simply run again. */
const TRANSIENT_PG_CODES = new Set(['40001', '40P01']);
const MAX_ATTEMPTS = 3;

/**
 * The pause between two batches: long enough for the requests that queued behind a batch (on
 * SQLite, for its one connection) to run all their queries before the next batch starts.
 */
const PAUSE_MS = 5;
const pause = () => new Promise<void>((resolve) => setTimeout(resolve, PAUSE_MS));

function isTransient(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && TRANSIENT_PG_CODES.has(code);
}

/**
 * Drains the re-evaluation queue in this process: woken when a change commits a job, and by
 * the sweeper (which picks up jobs a crash or another replica left). One drain at a time; a
 * job is run batch by batch, yielding to the event loop between batches so the broker keeps
 * answering. A job whose batch fails is left for the next wake, after the other jobs.
 */
export class ReevaluationWorker {
  readonly #ctx: EvaluationContext;
  readonly #limits: BatchLimits;
  #draining: Promise<void> | undefined;
  #again = false;
  #stopping = false;

  constructor(ctx: EvaluationContext, limits: Partial<BatchLimits> = {}) {
    this.#ctx = ctx;
    this.#limits = { ...BATCH_LIMITS, ...limits };
  }

  /** Starts draining, or makes the running drain look again once it is through. */
  wake(): void {
    if (this.#stopping) return;
    if (this.#draining) {
      this.#again = true;
      return;
    }
    this.#again = false;
    this.#draining = this.#drain()
      .catch((err: unknown) => this.#ctx.logger.error({ err }, 're-evaluation drain failed; will retry'))
      .finally(() => {
        this.#draining = undefined;
        if (this.#again) this.wake();
      });
  }

  /** Resolves once no drain is running (including drains started while waiting). */
  async idle(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  /** Finishes the batch under way and stops taking more; for shutdown. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.idle();
  }

  async #drain(): Promise<void> {
    const failed: string[] = [];
    for (;;) {
      if (this.#stopping) return;
      const id = await nextPendingJob(this.#ctx.store, failed);
      if (id === undefined) return;
      if (!(await this.#runJob(id))) failed.push(id);
    }
  }

  /** Runs a job to its end; false when a batch failed for good (the job stays pending). */
  async #runJob(id: string): Promise<boolean> {
    let attempts = 0;
    for (;;) {
      if (this.#stopping) return true;
      let done: boolean;
      try {
        done = await runReevaluationBatch(this.#ctx, id, this.#limits);
        attempts = 0;
      } catch (err) {
        attempts += 1;
        if (isTransient(err) && attempts < MAX_ATTEMPTS) continue;
        this.#ctx.logger.error({ err, job: id }, 're-evaluation batch failed; the job stays queued');
        return false;
      }
      if (done) return true;
      await pause();
    }
  }
}
