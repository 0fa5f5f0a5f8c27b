import { recordAudit } from '../audit/record.js';
import { endConsoleSessionsOf } from '../auth/console-session.js';
import type { BrokerContext } from '../core/context.js';
import { endSessionIn } from '../core/end-session.js';
import { endLiveSessionsOf } from '../core/end-sessions-of.js';
import type { ReevaluationTrigger } from '../domain/reevaluation.js';
import { isLive } from '../domain/session.js';
import { SIGNAL_LIMITS } from '../domain/transmitter.js';
import { applyTrustUpdate, type TrustUpdate } from '../domain/trust.js';
import { enqueueReevaluation } from '../evaluation/jobs.js';
import { inTransaction, isUniqueViolation, type TxHandle } from '../store/database.js';
import { lockSession } from '../store/repositories/sessions.js';
import { insertSeenSetJti } from '../store/repositories/signal-transmitters.js';
import { lockTrust, writeTrust } from '../store/repositories/trust.js';
import type { CaepEvent } from './caep-events.js';
import { SetRefused, type VerifiedSet, verifySet } from './set-verify.js';
import { type ResolvedSubject, resolveSubject } from './subjects.js';
import { transmitterKeysOf } from './transmitter-keys.js';

/** What a signal did, for the audit record and the caller. */
export interface SignalOutcome {
  event: string;
  principals: string[];
  session: string | null;
  effect: 'sessions_ended' | 'trust_updated' | 'trust_unchanged' | 'no_subject';
  ended: string[];
  jobs: string[];
}

/**
 * `POST /v1/signals`: a CAEP Security Event Token pushed by a registered transmitter (RFC
 * 8935). Verified strictly (see verifySet), accepted once (its `jti`), mapped to the principals
 * and session it is about in the transmitter's tenant. `session-revoked` ends their live
 * sessions (`trust_changed`) in the same transaction; every other event updates the trust
 * context and queues the re-evaluation of their live sessions. A refusal throws
 * {@link SetRefused} and changes nothing.
 */
export async function receiveSignal(ctx: BrokerContext, body: unknown): Promise<SignalOutcome> {
  if (typeof body !== 'string' || body.trim() === '')
    throw new SetRefused('invalid_request', 'send one SET as application/secevent+jwt');
  const now = ctx.clock.now();
  const set = await verifySet(body.trim(), {
    store: ctx.store,
    keys: transmitterKeysOf(ctx),
    now,
    clockToleranceSeconds: ctx.config.clockToleranceSeconds,
  });
  const subject = await resolveSubject(ctx.store, set.transmitter, ctx.config.publicUrl, set.read.subject);
  return inTransaction(ctx.store, async (tx) => {
    await rememberJti(tx, set, ctx.config.clockToleranceSeconds);
    const trigger: ReevaluationTrigger = {
      kind: 'signal',
      jti: set.jti,
      event_type: set.read.type,
      issuer: set.transmitter.issuer,
      transmitter: set.transmitter.name,
    };
    const outcome =
      subject.principals.length === 0
        ? noSubject(set)
        : set.read.event.name === 'session-revoked'
          ? await revokeSessions(ctx, tx, set, subject, trigger, now)
          : await updateTrust(ctx, tx, set, subject, trigger, now);
    await recordAudit(tx, set.transmitter.tenantId, now, {
      actor: set.transmitter.id,
      action: 'signal.received',
      target: outcome.session ?? outcome.principals[0] ?? set.transmitter.id,
      outcome: 'success',
      ...(outcome.principals.length === 1 ? { principalId: outcome.principals[0] } : {}),
      details: {
        ...trigger,
        subject_format: set.read.subject.format,
        facts: factsOf(set.read.event),
        effect: outcome.effect,
        principals: outcome.principals,
        session: outcome.session,
        ended_sessions: outcome.ended,
        jobs: outcome.jobs,
      },
    });
    return outcome;
  });
}

/** RFC 8417 §2.2: one SET is accepted once; its id is kept as long as the SET could be accepted. */
async function rememberJti(tx: TxHandle, set: VerifiedSet, toleranceSeconds: number): Promise<void> {
  try {
    await insertSeenSetJti(tx, {
      tenantId: set.transmitter.tenantId,
      issuer: set.transmitter.issuer,
      jti: set.jti,
      expiresAt: (set.iat + SIGNAL_LIMITS.maxAgeSeconds + toleranceSeconds) * 1000,
    });
  } catch (err) {
    if (isUniqueViolation(err))
      throw new SetRefused('invalid_request', 'this SET (jti) has already been received', { cause: err });
    throw err;
  }
}

function noSubject(set: VerifiedSet): SignalOutcome {
  return { event: set.read.type, principals: [], session: null, effect: 'no_subject', ended: [], jobs: [] };
}

async function revokeSessions(
  ctx: BrokerContext,
  tx: TxHandle,
  set: VerifiedSet,
  subject: ResolvedSubject,
  trigger: ReevaluationTrigger,
  now: number,
): Promise<SignalOutcome> {
  const ended: string[] = [];
  const details = { trigger };
  if (subject.session) {
    const session = await lockSession(tx, subject.session.id);
    const done =
      session && isLive(session, now)
        ? await endSessionIn(ctx, tx, session, now, 'trust_changed', set.transmitter.id, details)
        : null;
    if (done) ended.push(done.id);
  } else {
    for (const p of subject.principals) {
      const done = await endLiveSessionsOf(
        ctx,
        tx,
        p.tenantId,
        { principalId: p.id },
        now,
        'trust_changed',
        set.transmitter.id,
        details,
      );
      ended.push(...done.map((s) => s.id));
      // The person's console sign-ins end too: a revoked IdP session revokes every door it opened.
      await endConsoleSessionsOf(tx, p.id, now, 'signal');
    }
  }
  return {
    event: set.read.type,
    principals: subject.principals.map((p) => p.id),
    session: subject.session?.id ?? null,
    effect: 'sessions_ended',
    ended,
    jobs: [],
  };
}

async function updateTrust(
  ctx: BrokerContext,
  tx: TxHandle,
  set: VerifiedSet,
  subject: ResolvedSubject,
  trigger: ReevaluationTrigger,
  now: number,
): Promise<SignalOutcome> {
  // A transmitter's clock decides the order of its reports, but never past ours: a timestamp
  // from the future would make every later report look older and be ignored.
  const at = Math.min((set.read.eventTimestamp ?? set.iat) * 1000, now);
  const update = trustUpdateOf(set.read.event, at);
  const sessionId = subject.session?.id ?? null;
  const jobs: string[] = [];
  for (const p of subject.principals) {
    const current = await lockTrust(tx, p.tenantId, p.id, sessionId, now);
    const { next, changed } = applyTrustUpdate(current, update);
    if (!changed) continue;
    await writeTrust(tx, { tenantId: p.tenantId, principalId: p.id, sessionId }, next, now);
    const selector = sessionId ? { sessionId } : { principalId: p.id };
    jobs.push(await enqueueReevaluation(ctx, tx, p.tenantId, selector, trigger));
  }
  return {
    event: set.read.type,
    principals: subject.principals.map((p) => p.id),
    session: sessionId,
    effect: jobs.length > 0 ? 'trust_updated' : 'trust_unchanged',
    ended: [],
    jobs,
  };
}

function trustUpdateOf(event: CaepEvent, at: number): TrustUpdate {
  switch (event.name) {
    case 'session-revoked':
      return {};
    case 'credential-change':
      return { credentialChangedAt: at };
    case 'device-compliance-change':
      return { deviceCompliance: { value: event.currentStatus, at } };
    case 'assurance-level-change':
      return { assuranceLevel: { value: event.currentLevel, at } };
    case 'token-claims-change':
      return { claims: { value: event.claims, at } };
    case 'risk-level-change':
      return { riskLevel: { value: event.currentLevel, at } };
  }
}

/** The event's facts for the audit record, as reported. */
function factsOf(event: CaepEvent): Record<string, unknown> {
  const { name: _name, ...facts } = event;
  return facts;
}
