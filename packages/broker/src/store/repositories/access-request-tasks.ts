import type { StoreHandle, TxHandle } from '../database.js';
import type { AccessRequestTaskRow } from '../schema.js';

export async function findTaskByJti(h: StoreHandle, jti: string): Promise<AccessRequestTaskRow | undefined> {
  return h.db.selectFrom('access_request_tasks').selectAll().where('jti', '=', jti).executeTakeFirst();
}

export async function findTaskByIdempotencyKey(
  h: StoreHandle,
  principalId: string,
  key: string,
): Promise<AccessRequestTaskRow | undefined> {
  return h.db
    .selectFrom('access_request_tasks')
    .selectAll()
    .where('principal_id', '=', principalId)
    .where('idempotency_key', '=', key)
    .executeTakeFirst();
}

export async function insertTask(tx: TxHandle, row: AccessRequestTaskRow): Promise<void> {
  await tx.db.insertInto('access_request_tasks').values(row).execute();
}

/** Whether a Tether request was created by an access-request submission (it is a task). */
export async function isTaskRequest(h: StoreHandle, requestId: string): Promise<boolean> {
  const row = await h.db
    .selectFrom('access_request_tasks')
    .select('jti')
    .where('request_id', '=', requestId)
    .executeTakeFirst();
  return row !== undefined;
}
