import type { BrokerContext } from '../core/context.js';
import { newId } from '../domain/ids.js';
import type { ReevaluationJob, ReevaluationTrigger } from '../domain/reevaluation.js';
import { isLive } from '../domain/session.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import {
  insertReevaluationJob,
  lockReevaluationJob,
  writeReevaluationProgress,
} from '../store/repositories/reevaluation-jobs.js';
import {
  listLiveSessionIdsAfter,
  lockSessions,
  type SessionSelector,
} from '../store/repositories/sessions.js';
import { endByVerdict, type Narrowing, narrowSessionsIn, verdictDetails } from './apply.js';
import { judgeSession } from './evaluate.js';
import { EvaluationFacts } from './facts.js';

/** What a re-evaluation batch needs of the broker. */
export type EvaluationContext = Pick<
  BrokerContext,
  'store' | 'clock' | 'policy' | 'logger' | 'revocations' | 'connectors' | 'kek'
>;

/**
 * Sessions per transaction. Each batch holds its sessions' row locks (and, on SQLite, the one
 * connection) until it commits; between batches other requests are served.
 */
export const REEVALUATION_BATCH = 200;

/**
 * Queues the re-evaluation of the tenant's live sessions that `selector` picks (no member:
 * all of them), inside the transaction of the change that calls for it: the job exists
 * exactly when the change does, and a crash cannot lose it. The broker's worker starts on it
 * once the transaction commits. Returns the job id.
 *
 * @example
 * ```ts
 * await inTransaction(ctx.store, async (tx) => {
 *   await appendPolicyVersion(tx, tenantId, policies, by, now);
 *   await enqueueReevaluation(ctx, tx, tenantId, {}, { kind: 'policy_replaced', version, by });
 * });
 * ```
 */
export async function enqueueReevaluation(
  ctx: Pick<BrokerContext, 'clock' | 'reevaluation'>,
  tx: TxHandle,
  tenantId: string,
  selector: SessionSelector,
  trigger: ReevaluationTrigger,
): Promise<string> {
  const job: ReevaluationJob = {
    id: newId('reevaluationJob'),
    tenantId,
    selector,
    trigger,
    state: 'pending',
    cursor: '',
    processed: 0,
    narrowed: 0,
    ended: 0,
    createdAt: ctx.clock.now(),
    finishedAt: null,
  };
  await insertReevaluationJob(tx, job);
  tx.onCommit(() => ctx.reevaluation.wake());
  return job.id;
}

/** How much one batch may take: the sessions it holds, and (roughly) the time it runs for. */
export interface BatchLimits {
  batchSize: number;
  /**
   * A batch stops taking sessions once it has run this long (milliseconds, checked between
   * sessions) and commits what it has: on SQLite, every other query waits for the batch.
   */
  budgetMs: number;
}

export const BATCH_LIMITS: Readonly<BatchLimits> = Object.freeze({
  batchSize: REEVALUATION_BATCH,
  budgetMs: 100,
});

/**
 * Runs one batch of a job in its own transaction: the next live sessions after the job's
 * cursor, judged and kept, narrowed or ended; then the cursor moves past them. Answers true
 * when the job is done. The job's row lock serialises batches of one job across replicas, and
 * a batch that fails leaves the cursor where it was, so the sessions are taken again.
 */
export async function runReevaluationBatch(
  ctx: EvaluationContext,
  jobId: string,
  limits: BatchLimits = BATCH_LIMITS,
): Promise<boolean> {
  return inTransaction(ctx.store, async (tx) => {
    const job = await lockReevaluationJob(tx, jobId);
    if (job?.state !== 'pending') return true;
    const started = performance.now();
    const now = ctx.clock.now();
    const ids = await listLiveSessionIdsAfter(tx, job.tenantId, job.selector, {
      afterId: job.cursor,
      now,
      limit: limits.batchSize,
    });
    // Every session of the page is locked before anything is written: the order a refresh or
    // an end takes (the session, then the audit and log heads), so none of them can deadlock us.
    const live = new Map(
      (await lockSessions(tx, ids)).filter((s) => isLive(s, now)).map((s) => [s.id, s] as const),
    );
    const facts = new EvaluationFacts(tx);
    await facts.prefetch(job.tenantId, [...live.values()]);
    const progress = { ...job };
    const trigger = { trigger: job.trigger, job: job.id };
    const narrowings: Narrowing[] = [];
    let taken = 0;
    for (const id of ids) {
      if (taken > 0 && performance.now() - started > limits.budgetMs) break;
      taken += 1;
      progress.cursor = id;
      const session = live.get(id);
      if (!session) continue;
      progress.processed += 1;
      const verdict = await judgeSession(ctx, facts, session, now);
      if (verdict.outcome === 'narrow')
        narrowings.push({
          session,
          grant: verdict.grant,
          details: { reason: verdict.reason, ...verdictDetails(verdict, trigger) },
        });
      if (verdict.outcome === 'end' && (await endByVerdict(ctx, tx, session, verdict, now, trigger)))
        progress.ended += 1;
    }
    // Written together: one audit head lock and one run of log positions for the whole batch.
    progress.narrowed += (await narrowSessionsIn(ctx, tx, job.tenantId, narrowings, now)).length;
    const done = taken === ids.length && ids.length < limits.batchSize;
    progress.state = done ? 'done' : 'pending';
    progress.finishedAt = done ? now : null;
    await writeReevaluationProgress(tx, progress);
    return done;
  });
}
