import type { BrokerContext } from '../core/context.js';
import { pruneFinishedJobs } from '../store/repositories/reevaluation-jobs.js';
import { pruneSeenSetJtis } from '../store/repositories/signal-transmitters.js';

/** How long a finished re-evaluation job stays readable. */
const FINISHED_JOB_RETENTION_MS = 7 * 24 * 3600_000;

/**
 * The sweeper's part of continuous evaluation: forget SET ids that could no longer be
 * accepted, drop old finished jobs, and wake the worker for any job still pending (one a
 * crash left behind, or one another replica queued).
 */
export async function sweepContinuousEvaluation(
  ctx: Pick<BrokerContext, 'store' | 'reevaluation'>,
  now: number,
): Promise<void> {
  await pruneSeenSetJtis(ctx.store, now);
  await pruneFinishedJobs(ctx.store, now - FINISHED_JOB_RETENTION_MS);
  ctx.reevaluation.wake();
}
