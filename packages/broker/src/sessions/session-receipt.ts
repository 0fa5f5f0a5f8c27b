import type { BrokerContext, Caller } from '../core/context.js';
import type { SessionCredential } from '../domain/connector.js';
import type { Recording } from '../domain/recording.js';
import type { EndReason } from '../domain/session.js';
import { findConnector, listSessionCredentials } from '../store/repositories/connectors.js';
import { listLivePepInstances, type PepInstanceEnforcement } from '../store/repositories/pep-instances.js';
import { findSessionEndSeq, listPepEnforcement } from '../store/repositories/peps.js';
import { findRecording } from '../store/repositories/recordings.js';
import { getSession } from './query-sessions.js';

/** One PEP in a receipt. */
export interface PepReceiptEntry {
  principalId: string;
  name: string;
  appliedSeq: number;
  lastSeenAt: number;
  live: boolean;
  /**
   * When it enforced the end: when the last of its live instances first acked it (null while
   * one has not); without live instances, its first ack covering the end. Null if not yet (or
   * that ack was pruned).
   */
  enforcedAt: number | null;
  /** Its live instances (processes that acked within the liveness window). */
  instances: PepInstanceEntry[];
}

/** One live process of a PEP in a receipt. */
export interface PepInstanceEntry {
  instanceId: string;
  appliedSeq: number;
  lastSeenAt: number;
  enforcedAt: number | null;
}

/** When a session ended, and which enforcement points have applied the end. */
export interface SessionReceipt {
  sessionId: string;
  state: 'active' | 'ended';
  endedAt: number | null;
  reason: EndReason | null;
  /** The position of the session's `session_ended` event in the tenant's revocation log. */
  seq: number | null;
  enforced: boolean;
  peps: PepReceiptEntry[];
  /** Names of the live PEPs that have not applied the end. */
  pending: string[];
  /** What was minted for the session downstream, with the connector's name and kind. */
  credentials: (SessionCredential & { connector: string; kind: string })[];
  /** The session's recording, when its privilege required one: how much arrived, and its digest. */
  recording: Recording | null;
}

/**
 * The receipt of a session, for its holder, admins and auditors (anyone else, and every other
 * tenant, gets `not_found`, as for the session itself).
 *
 * The end is enforced once every live PEP has applied the `session_ended` event. A PEP is live
 * when heard from within `pepLivenessSeconds`; one silent for longer is past its staleness
 * budget (which must be shorter), so it denies every request and needs no waiting for. An
 * active session has nothing to enforce yet: not enforced, nothing pending.
 *
 * Replicas may share one PEP identity: each process acks with its own instance id, and a PEP
 * has applied the end only once every one of its live instances has (an instance is live when
 * it acked within the same window). One frozen replica keeps the end pending until it acks or
 * falls out of the window, however far its siblings are. A PEP heard from (a decision report)
 * without any live instance is judged by the furthest position any of its instances acked.
 */
export async function sessionReceipt(
  ctx: BrokerContext,
  caller: Caller,
  sessionId: string,
): Promise<SessionReceipt> {
  const session = await getSession(ctx, caller, sessionId);
  const tenantId = caller.tenant.id;
  const seq = session.state === 'ended' ? await findSessionEndSeq(ctx.store, tenantId, session.id) : null;
  const now = ctx.clock.now();
  const livenessMs = ctx.config.pepLivenessSeconds * 1000;
  const instances = new Map<string, PepInstanceEnforcement[]>();
  for (const i of await listLivePepInstances(ctx.store, tenantId, now - livenessMs, seq)) {
    const list = instances.get(i.principalId) ?? [];
    list.push(i);
    instances.set(i.principalId, list);
  }
  const peps = (await listPepEnforcement(ctx.store, tenantId, seq)).map((p) =>
    pepEntry(p, instances.get(p.principalId) ?? [], now - p.lastSeenAt <= livenessMs),
  );
  // Without an event (a session that ended before the log existed) there is nothing to apply.
  const pending = seq === null ? [] : peps.filter((p) => p.live && p.appliedSeq < seq).map((p) => p.name);
  return {
    sessionId: session.id,
    state: session.state,
    endedAt: session.endedAt,
    reason: session.endReason,
    seq,
    enforced: seq !== null && pending.length === 0,
    peps,
    pending,
    credentials: await credentialsOf(ctx, tenantId, session.id),
    recording: (await findRecording(ctx.store, tenantId, session.id)) ?? null,
  };
}

async function credentialsOf(ctx: BrokerContext, tenantId: string, sessionId: string) {
  const credentials = await listSessionCredentials(ctx.store, sessionId);
  return Promise.all(
    credentials.map(async (c) => {
      const connector = await findConnector(ctx.store, tenantId, c.connectorId);
      return { ...c, connector: connector?.name ?? c.connectorId, kind: connector?.kind ?? 'unknown' };
    }),
  );
}

/**
 * A PEP's receipt entry: with live instances, its position is the lowest of theirs (the end is
 * applied only where every one has applied it) and its enforcement time the latest of theirs.
 */
function pepEntry(
  p: Awaited<ReturnType<typeof listPepEnforcement>>[number],
  live: readonly PepInstanceEnforcement[],
  heardFrom: boolean,
): PepReceiptEntry {
  const instances = live.map((i) => ({
    instanceId: i.instanceId,
    appliedSeq: i.lastAppliedSeq,
    lastSeenAt: i.lastSeenAt,
    enforcedAt: i.enforcedAt,
  }));
  const base = {
    principalId: p.principalId,
    name: p.name,
    lastSeenAt: p.lastSeenAt,
    live: heardFrom || instances.length > 0,
    instances,
  };
  if (instances.length === 0) return { ...base, appliedSeq: p.lastAppliedSeq, enforcedAt: p.enforcedAt };
  const times = instances.map((i) => i.enforcedAt);
  return {
    ...base,
    appliedSeq: Math.min(...instances.map((i) => i.appliedSeq)),
    enforcedAt: times.some((t) => t === null) ? null : Math.max(...(times as number[])),
  };
}
