import type {
  Connector,
  ConnectorAction,
  ConnectorJob,
  ConnectorKind,
  ConnectorSettings,
  SessionCredential,
} from '../../domain/connector.js';
import type { StoreHandle, TxHandle } from '../database.js';
import type { ConnectorJobRow, ConnectorRow, SessionCredentialRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

function toConnector(row: ConnectorRow): Connector {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    kind: row.kind as ConnectorKind,
    settings: fromJson<ConnectorSettings>(row.settings),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

export async function insertConnector(h: StoreHandle, c: Connector, sealedSecret: string): Promise<void> {
  await h.db
    .insertInto('connectors')
    .values({
      id: c.id,
      tenant_id: c.tenantId,
      name: c.name,
      kind: c.kind,
      settings: toJson(c.settings),
      sealed_secret: sealedSecret,
      created_at: c.createdAt,
      updated_at: c.updatedAt,
    })
    .execute();
}

export async function findConnector(
  h: StoreHandle,
  tenantId: string,
  id: string,
): Promise<Connector | undefined> {
  const row = await h.db
    .selectFrom('connectors')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row && toConnector(row);
}

export async function findConnectorByName(
  h: StoreHandle,
  tenantId: string,
  name: string,
): Promise<Connector | undefined> {
  const row = await h.db
    .selectFrom('connectors')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('name', '=', name)
    .executeTakeFirst();
  return row && toConnector(row);
}

/** The connector with its sealed secret, for the runner (never for an API answer). */
export async function findConnectorSecret(
  h: StoreHandle,
  id: string,
): Promise<{ connector: Connector; sealedSecret: string } | undefined> {
  const row = await h.db.selectFrom('connectors').selectAll().where('id', '=', id).executeTakeFirst();
  return row && { connector: toConnector(row), sealedSecret: row.sealed_secret };
}

export async function listConnectors(h: StoreHandle, tenantId: string): Promise<Connector[]> {
  const rows = await h.db
    .selectFrom('connectors')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('name')
    .execute();
  return rows.map(toConnector);
}

export async function deleteConnector(h: StoreHandle, tenantId: string, id: string): Promise<void> {
  await h.db.deleteFrom('connectors').where('tenant_id', '=', tenantId).where('id', '=', id).execute();
}

/** Whether any job or credential (of any session, live or ended) still refers to the connector. */
export async function connectorHasHistory(h: StoreHandle, id: string): Promise<boolean> {
  const job = await h.db
    .selectFrom('connector_jobs')
    .select('id')
    .where('connector_id', '=', id)
    .limit(1)
    .executeTakeFirst();
  return job !== undefined;
}

function toJob(row: ConnectorJobRow): ConnectorJob {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    sessionId: row.session_id,
    connectorId: row.connector_id,
    action: row.action as ConnectorAction,
    state: row.state as ConnectorJob['state'],
    attempts: Number(row.attempts),
    nextAttemptAt: Number(row.next_attempt_at),
    leaseUntil: row.lease_until === null ? null : Number(row.lease_until),
    leaseToken: row.lease_token,
    lastError: row.last_error,
    createdAt: Number(row.created_at),
    doneAt: row.done_at === null ? null : Number(row.done_at),
  };
}

export async function insertConnectorJob(tx: TxHandle, job: ConnectorJob): Promise<void> {
  await tx.db
    .insertInto('connector_jobs')
    .values({
      id: job.id,
      tenant_id: job.tenantId,
      session_id: job.sessionId,
      connector_id: job.connectorId,
      action: job.action,
      state: job.state,
      attempts: job.attempts,
      next_attempt_at: job.nextAttemptAt,
      lease_until: job.leaseUntil,
      lease_token: job.leaseToken,
      last_error: job.lastError,
      created_at: job.createdAt,
      done_at: job.doneAt,
    })
    .execute();
}

export async function listSessionJobs(h: StoreHandle, sessionId: string): Promise<ConnectorJob[]> {
  const rows = await h.db
    .selectFrom('connector_jobs')
    .selectAll()
    .where('session_id', '=', sessionId)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map(toJob);
}

/** Pending jobs due now and not held by a live lease, oldest first. */
export async function listDueJobs(h: StoreHandle, now: number, limit: number): Promise<ConnectorJob[]> {
  const rows = await h.db
    .selectFrom('connector_jobs')
    .selectAll()
    .where('state', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
    .orderBy('next_attempt_at')
    .limit(limit)
    .execute();
  return rows.map(toJob);
}

/** The earliest time a pending job is due (to sleep until then), or undefined. */
export async function nextDueAt(h: StoreHandle): Promise<number | undefined> {
  const row = await h.db
    .selectFrom('connector_jobs')
    .select((eb) => eb.fn.min('next_attempt_at').as('at'))
    .where('state', '=', 'pending')
    .executeTakeFirst();
  return row?.at === null || row?.at === undefined ? undefined : Number(row.at);
}

/**
 * Takes a job for `until` under `token` if no live lease holds it: one runner at a time across
 * replicas (the conditional update is atomic on both stores). True when this caller holds it now.
 */
export async function leaseJob(
  h: StoreHandle,
  id: string,
  now: number,
  lease: { until: number; token: string },
): Promise<boolean> {
  const result = await h.db
    .updateTable('connector_jobs')
    .set({ lease_until: lease.until, lease_token: lease.token })
    .where('id', '=', id)
    .where('state', '=', 'pending')
    .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Completes a job, if `token` still holds its lease: a runner that stalled past its lease, while
 * another took the job, cannot complete (or fail) it on top of that one. True when completed.
 */
export async function markJobDone(tx: TxHandle, id: string, now: number, token: string): Promise<boolean> {
  const result = await tx.db
    .updateTable('connector_jobs')
    .set({ state: 'done', done_at: now, lease_until: null, lease_token: null, last_error: null })
    .where('id', '=', id)
    .where('state', '=', 'pending')
    .where('lease_token', '=', token)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Records a failed attempt, if `token` still holds the lease: counted, the reason kept, the
 * lease released, tried again at `retryAt`. True when recorded.
 */
export async function markJobFailed(
  tx: TxHandle,
  id: string,
  token: string,
  failure: { attempts: number; retryAt: number; reason: string },
): Promise<boolean> {
  const result = await tx.db
    .updateTable('connector_jobs')
    .set({
      attempts: failure.attempts,
      next_attempt_at: failure.retryAt,
      last_error: failure.reason,
      lease_until: null,
      lease_token: null,
    })
    .where('id', '=', id)
    .where('state', '=', 'pending')
    .where('lease_token', '=', token)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** Pending jobs that have failed at least `attempts` times: what the alert metric counts. */
export async function countFailingJobs(h: StoreHandle, attempts: number): Promise<number> {
  const row = await h.db
    .selectFrom('connector_jobs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('state', '=', 'pending')
    .where('attempts', '>=', attempts)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

function toCredential(row: SessionCredentialRow): SessionCredential {
  return {
    sessionId: row.session_id,
    connectorId: row.connector_id,
    tenantId: row.tenant_id,
    username: row.username,
    fingerprint: row.fingerprint,
    validUntil: Number(row.valid_until),
    mintedAt: Number(row.minted_at),
    collectedAt: row.collected_at === null ? null : Number(row.collected_at),
    destroyedAt: row.destroyed_at === null ? null : Number(row.destroyed_at),
    connectionsTerminated: row.connections_terminated === null ? null : Number(row.connections_terminated),
  };
}

/** Writes (or, for a repeated mint, replaces) what a session got from a connector. */
export async function writeMintedCredential(
  tx: TxHandle,
  c: SessionCredential,
  sealedSecret: string | null,
): Promise<void> {
  await tx.db
    .deleteFrom('session_credentials')
    .where('session_id', '=', c.sessionId)
    .where('connector_id', '=', c.connectorId)
    .execute();
  await tx.db
    .insertInto('session_credentials')
    .values({
      session_id: c.sessionId,
      connector_id: c.connectorId,
      tenant_id: c.tenantId,
      username: c.username,
      fingerprint: c.fingerprint,
      sealed_secret: sealedSecret,
      valid_until: c.validUntil,
      minted_at: c.mintedAt,
      collected_at: c.collectedAt,
      destroyed_at: c.destroyedAt,
      connections_terminated: c.connectionsTerminated,
    })
    .execute();
}

export async function writeDestroyedCredential(
  tx: TxHandle,
  sessionId: string,
  connectorId: string,
  at: number,
  connectionsTerminated: number,
): Promise<void> {
  await tx.db
    .updateTable('session_credentials')
    .set({ destroyed_at: at, connections_terminated: connectionsTerminated, sealed_secret: null })
    .where('session_id', '=', sessionId)
    .where('connector_id', '=', connectorId)
    .execute();
}

export async function listSessionCredentials(
  h: StoreHandle,
  sessionId: string,
): Promise<SessionCredential[]> {
  const rows = await h.db
    .selectFrom('session_credentials')
    .selectAll()
    .where('session_id', '=', sessionId)
    .orderBy('minted_at')
    .execute();
  return rows.map(toCredential);
}

/** The sealed values the holder has not collected yet (locked on PostgreSQL: collected once). */
export async function uncollectedSecrets(
  tx: TxHandle,
  sessionId: string,
): Promise<{ credential: SessionCredential; sealedSecret: string }[]> {
  let query = tx.db
    .selectFrom('session_credentials')
    .selectAll()
    .where('session_id', '=', sessionId)
    .where('sealed_secret', 'is not', null);
  if (tx.dialect === 'postgres') query = query.forUpdate();
  const rows = await query.execute();
  return rows.map((row) => ({ credential: toCredential(row), sealedSecret: row.sealed_secret as string }));
}

export async function markCollected(
  tx: TxHandle,
  sessionId: string,
  connectorId: string,
  at: number,
): Promise<void> {
  await tx.db
    .updateTable('session_credentials')
    .set({ sealed_secret: null, collected_at: at })
    .where('session_id', '=', sessionId)
    .where('connector_id', '=', connectorId)
    .execute();
}

/** Makes a session's pending mint jobs due at `now` (its end: they stand down at once). */
export async function makeMintsDue(tx: TxHandle, sessionId: string, now: number): Promise<void> {
  await tx.db
    .updateTable('connector_jobs')
    .set({ next_attempt_at: now })
    .where('session_id', '=', sessionId)
    .where('action', '=', 'mint')
    .where('state', '=', 'pending')
    .where('next_attempt_at', '>', now)
    .execute();
}
