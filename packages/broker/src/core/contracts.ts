import { recordAudit } from '../audit/record.js';
import type { ContractWindow } from '../domain/contract.js';
import type { Principal } from '../domain/principal.js';
import { type AccessRequest, cancel, expire } from '../domain/request.js';
import type { Session } from '../domain/session.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import {
  listLiveSessionIdsOf,
  listPendingOutOfContract,
  listPendingRequestIdsOf,
  listSessionsOutOfContract,
} from '../store/repositories/contracts.js';
import { lockRequest, updateRequestState } from '../store/repositories/requests.js';
import { lockSession, lockSessions, writeSessionExpiry } from '../store/repositories/sessions.js';
import type { BrokerContext } from './context.js';
import { endSessionIn } from './end-session.js';
import { writeExpiry } from './expire-requests.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** What the audit records of a contract's consequences carry about it. */
function contractDetails(contract: ContractWindow | undefined): Record<string, unknown> {
  return { contract: { starts_at: iso(contract?.startsAt ?? null), ends_at: iso(contract?.endsAt ?? null) } };
}

/**
 * Cancels a locked pending request because its principal is out of contract, or expires it
 * when its own deadline came first. Returns whether it changed.
 */
async function cancelOutOfContract(
  tx: TxHandle,
  request: AccessRequest,
  at: number,
  by: string | null,
  contract: ContractWindow | undefined,
): Promise<boolean> {
  if (request.state !== 'pending') return false;
  const expired = expire(request, at);
  if (expired) return writeExpiry(tx, expired, at);
  const cancelled = cancel(request, at, by ?? 'system');
  if (!(await updateRequestState(tx, cancelled, 'pending'))) return false;
  await recordAudit(tx, request.tenantId, at, {
    actor: by ?? 'system',
    action: 'request.cancelled',
    target: request.id,
    outcome: 'success',
    requestId: request.id,
    ticket: request.ticket,
    principalId: request.principalId,
    details: { reason: 'contract_ended', kind: request.kind, ...contractDetails(contract) },
  });
  return true;
}

/**
 * Inside the caller's transaction (which holds the principal's row lock), the principal is out
 * of its contract: its live sessions end (`contract_ended`) and its pending requests are
 * cancelled. Locks sessions, then requests, before the first end writes the audit and log heads:
 * the order a review of an extension takes them in.
 */
export async function endOutOfContract(
  ctx: Pick<BrokerContext, 'revocations' | 'connectors'>,
  tx: TxHandle,
  principal: Principal,
  at: number,
  by: string,
): Promise<{ sessions: Session[]; requests: string[] }> {
  const sessions = await lockSessions(tx, await listLiveSessionIdsOf(tx, principal.tenantId, principal.id));
  const requests: AccessRequest[] = [];
  for (const id of await listPendingRequestIdsOf(tx, principal.tenantId, principal.id)) {
    const request = await lockRequest(tx, principal.tenantId, id);
    if (request) requests.push(request);
  }
  const ended: Session[] = [];
  for (const session of sessions) {
    const done =
      session.state === 'active'
        ? await endSessionIn(ctx, tx, session, at, 'contract_ended', by, contractDetails(principal.contract))
        : null;
    if (done) ended.push(done);
  }
  const cancelled: string[] = [];
  for (const request of requests) {
    if (await cancelOutOfContract(tx, request, at, by, principal.contract)) cancelled.push(request.id);
  }
  return { sessions: ended, requests: cancelled };
}

/**
 * Inside the caller's transaction (which holds the principal's row lock), the contract's end
 * moved earlier but is still ahead: every live session of the principal that would outlive it
 * now ends at it. Its tokens already issued carry the old `session_exp`; at the contract end the
 * sweeper ends the session (`contract_ended`), which the PEPs enforce. Returns the sessions capped.
 */
export async function capSessionsAtContractEnd(
  tx: TxHandle,
  principal: Principal,
  endsAt: number,
  at: number,
  by: string,
): Promise<string[]> {
  const sessions = await lockSessions(
    tx,
    await listLiveSessionIdsOf(tx, principal.tenantId, principal.id, endsAt),
  );
  const capped: string[] = [];
  for (const session of sessions) {
    if (session.state !== 'active' || session.hardExpiresAt <= endsAt) continue;
    if (!(await writeSessionExpiry(tx, session.id, endsAt))) continue;
    capped.push(session.id);
    await recordAudit(tx, session.tenantId, at, {
      actor: by,
      action: 'session.expiry_capped',
      target: session.id,
      outcome: 'success',
      requestId: session.requestId,
      ticket: session.ticket,
      principalId: session.principalId,
      details: {
        reason: 'contract_changed',
        previous_hard_expires_at: iso(session.hardExpiresAt),
        hard_expires_at: iso(endsAt),
        ...contractDetails(principal.contract),
      },
    });
  }
  return capped;
}

/**
 * The sweeper's step at contract ends: ends, each in its own transaction, the live sessions of
 * principals whose contract has ended (`contract_ended`; the session's hard expiry was capped
 * at that end, so this is the session's natural end labelled with its cause) and cancels their
 * pending requests. Runs before the expiry sweep, which would otherwise call them `expired`.
 * Returns how many sessions and requests it changed.
 */
export async function endContracts(ctx: BrokerContext, batch = 200): Promise<number> {
  let total = 0;
  for (;;) {
    const now = ctx.clock.now();
    const found = await listSessionsOutOfContract(ctx.store, now, batch);
    let changed = 0;
    for (const { id, contract } of found) {
      const done = await inTransaction(ctx.store, async (tx) => {
        const current = await lockSession(tx, id);
        return current?.state === 'active'
          ? endSessionIn(ctx, tx, current, now, 'contract_ended', null, {
              trigger: 'sweep',
              ...contractDetails(contract),
            })
          : null;
      });
      if (done) changed += 1;
    }
    total += changed;
    // A full batch that changed nothing would be found again: stop rather than spin.
    if (found.length < batch || changed === 0) break;
  }
  for (;;) {
    const now = ctx.clock.now();
    const found = await listPendingOutOfContract(ctx.store, now, batch);
    let changed = 0;
    for (const candidate of found) {
      const done = await inTransaction(ctx.store, async (tx) => {
        const current = await lockRequest(tx, candidate.tenantId, candidate.id);
        return current ? cancelOutOfContract(tx, current, now, null, candidate.contract) : false;
      });
      if (done) changed += 1;
    }
    total += changed;
    if (found.length < batch || changed === 0) return total;
  }
}
