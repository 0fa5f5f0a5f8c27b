import { checkpointOnSchedule } from '../audit/checkpoints.js';
import { pruneSpentJtis } from '../auth/client-assertion.js';
import { pruneSpentProofs } from '../core/broker-dpop.js';
import type { BrokerContext } from '../core/context.js';
import { endContracts } from '../core/contracts.js';
import { endOverdueRelationships } from '../core/end-relationship.js';
import { endExpiredSessions } from '../core/end-session.js';
import { expireOverdueRequests } from '../core/expire-requests.js';
import { runSteps } from '../core/health.js';
import { pruneAckHistory } from '../enforcement/pep-ack.js';
import { sweepContinuousEvaluation } from '../evaluation/sweep.js';
import { endLapsedRecordings } from '../recordings/end-lapsed-recordings.js';
import { compactRevocationLog } from '../revocation/snapshot.js';
import { endIdleSessions } from '../sessions/end-idle-sessions.js';
import { pruneSubjectTokenUses } from '../store/repositories/subject-tokens.js';
import { retireExpiredKeys } from './signing-keys.js';

/** One named step of the sweep. */
export type SweepStep = readonly [name: string, step: () => Promise<unknown>];

/**
 * The sweeper's steps, in order. Each runs in its own error boundary ({@link runSteps}): a
 * store fault in one (say, re-evaluation) is logged and counted, and key retirement and log
 * compaction still run.
 */
export function sweepSteps(ctx: BrokerContext): SweepStep[] {
  const now = () => ctx.clock.now();
  const counted = (what: string, count: number) => {
    if (count > 0) ctx.logger.info({ [what]: count }, `sweeper: ${what}`);
  };
  return [
    ['expire_requests', async () => counted('expired_requests', await expireOverdueRequests(ctx))],
    // Before the expiry sweep: a session capped at its contract's end ends `contract_ended`, not `expired`.
    ['end_contracts', async () => counted('ended_at_contract_end', await endContracts(ctx))],
    // Likewise: a session capped at its relationship's end ends `relationship_ended`.
    ['end_relationships', async () => counted('relationships_ended', await endOverdueRelationships(ctx))],
    ['end_expired_sessions', async () => counted('ended_at_hard_expiry', await endExpiredSessions(ctx))],
    ['end_idle_sessions', async () => counted('ended_idle', await endIdleSessions(ctx))],
    ['end_lapsed_recordings', async () => counted('ended_recording_lapsed', await endLapsedRecordings(ctx))],
    ['prune_assertion_ids', () => pruneSpentJtis(ctx.store, now())],
    ['prune_dpop_proofs', () => pruneSpentProofs(ctx, now())],
    ['prune_subject_tokens', () => pruneSubjectTokenUses(ctx.store, now())],
    ['continuous_evaluation', () => sweepContinuousEvaluation(ctx, now())],
    // Picks up connector jobs a crash, a failed attempt or another replica left.
    ['connector_jobs', async () => ctx.connectors.wake()],
    ['retire_keys', () => retireExpiredKeys(ctx.store, now(), ctx.revocations)],
    [
      'compact_revocation_log',
      async () =>
        counted(
          'compacted_events',
          await compactRevocationLog(ctx.store, now() - ctx.config.revocationRetentionSeconds * 1000),
        ),
    ],
    ['prune_ack_history', () => pruneAckHistory(ctx.store, now())],
    // Picks up a rotation made by `tether keys rotate` or another replica.
    ['load_signing_keys', () => ctx.keys.load()],
    // Narrows what truncating an audit chain could hide to the records since the last checkpoint.
    ['audit_checkpoints', () => checkpointOnSchedule(ctx, now())],
  ];
}

/** One pass of the sweeper: every step, each in its own error boundary. */
export async function sweepOnce(
  ctx: BrokerContext,
  steps: readonly SweepStep[] = sweepSteps(ctx),
): Promise<void> {
  await runSteps(ctx.health, steps);
}
