import { TetherError } from '@tether-broker/protocol';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import type { Principal } from '../domain/principal.js';
import { revocationHead } from '../revocation/log.js';
import { inTransaction, type StoreHandle, type TxHandle } from '../store/database.js';
import {
  deletePepInstance,
  deletePepInstancesBefore,
  lockOrCreatePepInstance,
  writePepInstanceProgress,
} from '../store/repositories/pep-instances.js';
import {
  deletePepAcksBefore,
  insertPepAck,
  listSessionEndTimes,
  lockOrCreatePep,
  writePepProgress,
} from '../store/repositories/peps.js';
import type { EnforcementMetrics } from './enforcement-metrics.js';

/**
 * At most this many session ends are timed per ack. A PEP that skips further in one ack is
 * catching up on a backlog (after a restart or an outage), not reacting to new ends.
 */
const TIMED_ENDS_PER_ACK = 10_000;

/** The instance an ack that names none counts for: one unnamed process of the principal. */
export const UNNAMED_INSTANCE = '-';

/** How long acknowledgement history is kept: receipts older than this lose their `enforced_at`. */
export const PEP_ACK_RETENTION_MS = 7 * 24 * 3600 * 1000;

/**
 * The PEP a request names, which must be the caller itself: only an enforcement point
 * speaks for itself, by its principal id or name.
 */
export function requireSelfPep(caller: Caller, ref: string): Principal {
  requireRole(caller, 'pep');
  if (ref !== caller.principal.id && ref !== caller.principal.name)
    throw new TetherError('forbidden', 'an enforcement point acknowledges for itself only');
  return caller.principal;
}

/**
 * A PEP says it has applied its tenant's revocation log up to `applied` (cumulative, so one
 * ack covers a batch). Its position never moves back; a move forward is kept in the ack
 * history that receipts read, and each `session_ended` event it newly covers is timed (ack
 * time − end time) once the transaction commits. Ends from before the broker first heard from
 * the PEP are not timed: the PEP was not there to enforce them. An ack also marks the PEP as
 * heard from. A position beyond the log's head cannot come from this broker: refused.
 *
 * `instance` names the PEP process (random per start): each instance's position and ack history
 * is kept too, so that a receipt waits for every live replica sharing the identity, not only
 * the one furthest ahead. A PEP closing cleanly says it is `leaving`: it serves no more
 * requests, so its instance is forgotten at once.
 */
export async function acknowledgeRevocations(
  ctx: BrokerContext,
  caller: Caller,
  pepRef: string,
  applied: number,
  metrics: EnforcementMetrics,
  instance: string = UNNAMED_INSTANCE,
  leaving = false,
): Promise<{ applied: number; head: number }> {
  const pep = requireSelfPep(caller, pepRef);
  const tenantId = caller.tenant.id;
  // The head only grows: a position within it now is within it when the batch commits.
  const head = await revocationHead(ctx.store, tenantId);
  if (applied > head)
    throw new TetherError(
      'invalid_request',
      `position ${applied} is ahead of this tenant's revocation log, which ends at ${head}`,
    );
  const recorded = await batcherOf(ctx.store).submit({
    ctx,
    tenantId,
    pepId: pep.id,
    instanceId: instance,
    leaving,
    applied,
    metrics,
  });
  return { applied: recorded, head };
}

interface PendingAck {
  ctx: BrokerContext;
  tenantId: string;
  pepId: string;
  instanceId: string;
  /** The instance is stopping: its row goes, so receipts no longer wait for it. */
  leaving: boolean;
  applied: number;
  metrics: EnforcementMetrics;
}

/** How long an ack waits for others to share its transaction. */
const ACK_BATCH_WINDOW_MS = 5;

/**
 * Group commit for acks: every PEP acks each burst of events, so one revocation brings as many
 * acks as there are PEPs. Written one transaction each, they would cost as many durable commits
 * (fsyncs on SQLite, which also block its single writer); gathered for a few milliseconds,
 * they cost one. Each caller still answers only once its ack has committed.
 */
class AckBatcher {
  #queue: { ack: PendingAck; resolve: (recorded: number) => void; reject: (err: unknown) => void }[] = [];
  #scheduled = false;
  #running: Promise<void> = Promise.resolve();

  constructor(private readonly store: StoreHandle) {}

  submit(ack: PendingAck): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ ack, resolve, reject });
      if (this.#scheduled) return;
      this.#scheduled = true;
      setTimeout(() => {
        this.#running = this.#running.then(() => this.#flush());
      }, ACK_BATCH_WINDOW_MS);
    });
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    // Rows are locked in (PEP id, instance id) order, so two replicas' batches cannot deadlock.
    const key = (a: PendingAck) => `${a.pepId}\u0000${a.instanceId}`;
    const batch = this.#queue
      .splice(0)
      .sort((a, b) => (key(a.ack) < key(b.ack) ? -1 : key(a.ack) > key(b.ack) ? 1 : 0));
    if (batch.length === 0) return;
    try {
      const recorded = await inTransaction(this.store, async (tx) => {
        const out: number[] = [];
        for (const { ack } of batch) out.push(await applyAck(tx, ack));
        return out;
      });
      for (const [i, item] of batch.entries()) item.resolve(recorded[i]!);
    } catch (err) {
      for (const item of batch) item.reject(err);
    }
  }
}

const batchers = new WeakMap<StoreHandle, AckBatcher>();

function batcherOf(store: StoreHandle): AckBatcher {
  let batcher = batchers.get(store);
  if (batcher === undefined) {
    batcher = new AckBatcher(store);
    batchers.set(store, batcher);
  }
  return batcher;
}

/**
 * One PEP's ack inside the batch's transaction; answers the position recorded for the
 * principal (the furthest any of its instances got).
 */
async function applyAck(tx: TxHandle, ack: PendingAck): Promise<number> {
  const { tenantId, pepId, applied, metrics } = ack;
  const now = ack.ctx.clock.now();
  const before = await lockOrCreatePep(tx, tenantId, pepId, now);
  const instance = await lockOrCreatePepInstance(tx, tenantId, pepId, ack.instanceId, now);
  await writePepInstanceProgress(tx, tenantId, instance, Math.max(instance.lastAppliedSeq, applied), now);
  if (ack.leaving) await deletePepInstance(tx, pepId, ack.instanceId);
  const recorded = Math.max(before.lastAppliedSeq, applied);
  await writePepProgress(tx, pepId, {
    lastAppliedSeq: recorded,
    lastSeenAt: now,
    decisionsDropped: before.decisionsDropped,
  });
  if (recorded > before.lastAppliedSeq) {
    await insertPepAck(tx, { tenantId, principalId: pepId, seq: recorded, at: now });
    const ends = await listSessionEndTimes(tx, tenantId, {
      after: Math.max(before.lastAppliedSeq, recorded - TIMED_ENDS_PER_ACK),
      upTo: recorded,
      since: before.createdAt,
    });
    if (ends.length > 0)
      tx.onCommit(() => metrics.revocationsApplied(ends.map((at) => Math.max(0, now - at) / 1000)));
  }
  return recorded;
}

/**
 * Deletes acknowledgement history older than {@link PEP_ACK_RETENTION_MS}, for the sweeper.
 * Answers how many rows went.
 */
export async function pruneAckHistory(store: StoreHandle, now: number): Promise<number> {
  const before = now - PEP_ACK_RETENTION_MS;
  return (await deletePepAcksBefore(store, before)) + (await deletePepInstancesBefore(store, before));
}
