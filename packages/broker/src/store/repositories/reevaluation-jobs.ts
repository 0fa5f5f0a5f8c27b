import type { ReevaluationJob, ReevaluationTrigger } from '../../domain/reevaluation.js';
import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { ReevaluationJobRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

function toJob(row: ReevaluationJobRow): ReevaluationJob {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    selector: fromJson<ReevaluationJob['selector']>(row.selector),
    trigger: fromJson<ReevaluationTrigger>(row.trigger),
    state: row.state as ReevaluationJob['state'],
    cursor: row.cursor,
    processed: row.processed,
    narrowed: row.narrowed,
    ended: row.ended,
    createdAt: row.created_at,
    finishedAt: row.finished_at,
  };
}

export async function insertReevaluationJob(tx: TxHandle, job: ReevaluationJob): Promise<void> {
  await tx.db
    .insertInto('reevaluation_jobs')
    .values({
      id: job.id,
      tenant_id: job.tenantId,
      selector: toJson(job.selector),
      trigger: toJson(job.trigger),
      state: job.state,
      cursor: job.cursor,
      processed: job.processed,
      narrowed: job.narrowed,
      ended: job.ended,
      created_at: job.createdAt,
      finished_at: job.finishedAt,
    })
    .execute();
}

/** The oldest pending job, leaving out `skip` (jobs whose last batch failed in this round). */
export async function nextPendingJob(h: StoreHandle, skip: readonly string[]): Promise<string | undefined> {
  let q = h.db.selectFrom('reevaluation_jobs').select('id').where('state', '=', 'pending');
  if (skip.length > 0) q = q.where('id', 'not in', skip);
  const row = await q.orderBy('created_at').orderBy('id').limit(1).executeTakeFirst();
  return row?.id;
}

/** Locks a job for one batch: batches of one job, on any replica, run one after the other. */
export async function lockReevaluationJob(tx: TxHandle, id: string): Promise<ReevaluationJob | undefined> {
  const row = await forUpdate(
    tx,
    tx.db.selectFrom('reevaluation_jobs').selectAll().where('id', '=', id),
  ).executeTakeFirst();
  return row && toJob(row);
}

/** Records a batch's progress: the cursor, the running counts, and the end when it was the last. */
export async function writeReevaluationProgress(tx: TxHandle, job: ReevaluationJob): Promise<void> {
  await tx.db
    .updateTable('reevaluation_jobs')
    .set({
      state: job.state,
      cursor: job.cursor,
      processed: job.processed,
      narrowed: job.narrowed,
      ended: job.ended,
      finished_at: job.finishedAt,
    })
    .where('id', '=', job.id)
    .execute();
}

/** Finished jobs older than `before`: kept a while to be read, then dropped by the sweeper. */
export async function pruneFinishedJobs(h: StoreHandle, before: number): Promise<number> {
  const result = await h.db
    .deleteFrom('reevaluation_jobs')
    .where('state', '=', 'done')
    .where('finished_at', '<', before)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
