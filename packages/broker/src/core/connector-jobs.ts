import type { ConnectorAction, ConnectorJob } from '../domain/connector.js';
import { newId } from '../domain/ids.js';
import type { Session } from '../domain/session.js';
import type { TxHandle } from '../store/database.js';
import {
  findConnectorByName,
  insertConnectorJob,
  listSessionJobs,
  makeMintsDue,
} from '../store/repositories/connectors.js';
import type { ConnectorQueue } from './context.js';

function newJob(session: Session, connectorId: string, action: ConnectorAction, now: number): ConnectorJob {
  return {
    id: newId('connectorJob'),
    tenantId: session.tenantId,
    sessionId: session.id,
    connectorId,
    action,
    state: 'pending',
    attempts: 0,
    nextAttemptAt: now,
    leaseUntil: null,
    leaseToken: null,
    lastError: null,
    createdAt: now,
    doneAt: null,
  };
}

/**
 * Queues the minting of a session's credentials, one job per connector its privilege names,
 * inside the transaction that starts the session: the jobs exist exactly when the session does.
 * The runner takes them once the transaction commits.
 */
export async function enqueueMints(
  ctx: { connectors: ConnectorQueue },
  tx: TxHandle,
  session: Session,
  connectorNames: readonly string[],
  now: number,
): Promise<number> {
  let queued = 0;
  for (const name of connectorNames) {
    const connector = await findConnectorByName(tx, session.tenantId, name);
    // A connector removed since the privilege named it cannot be (removal is refused while named).
    if (!connector) continue;
    await insertConnectorJob(tx, newJob(session, connector.id, 'mint', now));
    queued += 1;
  }
  if (queued > 0) tx.onCommit(() => ctx.connectors.wake());
  return queued;
}

/**
 * Queues the destruction of everything minted (or being minted) for a session, inside the
 * transaction that ends it, whatever the reason: a crash after the commit cannot lose it.
 */
export async function enqueueDestroys(
  ctx: { connectors: ConnectorQueue },
  tx: TxHandle,
  session: Session,
  now: number,
): Promise<number> {
  const jobs = await listSessionJobs(tx, session.id);
  const minted = new Set(jobs.filter((j) => j.action === 'mint').map((j) => j.connectorId));
  const destroying = new Set(jobs.filter((j) => j.action === 'destroy').map((j) => j.connectorId));
  // A mint still pending (waiting out a backoff) is made due now: it will find the session ended
  // and stand down, and the destroy, which waits for it, need not wait out the backoff.
  await makeMintsDue(tx, session.id, now);
  let queued = 0;
  for (const connectorId of minted) {
    if (destroying.has(connectorId)) continue;
    await insertConnectorJob(tx, newJob(session, connectorId, 'destroy', now));
    queued += 1;
  }
  if (queued > 0) tx.onCommit(() => ctx.connectors.wake());
  return queued;
}
