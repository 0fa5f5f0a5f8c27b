import { randomUUID } from 'node:crypto';
import { recordAudit } from '../audit/record.js';
import { openSecret } from '../config/key-encryption.js';
import type { BrokerContext } from '../core/context.js';
import { endpointForAudit, type Stream } from '../domain/ssf-stream.js';
import { outboundOf } from '../net/client.js';
import type { OutboundClient } from '../net/outbound.js';
import { DELIVERY_POLICY, type DeliveryPolicy, retryDelay } from '../ssf/delivery-policy.js';
import { type PushOutcome, pushSet } from '../ssf/push.js';
import { buildSetClaims, signSet } from '../ssf/set.js';
import { inTransaction } from '../store/database.js';
import { listDueStreams, releaseLease, takeLease } from '../store/repositories/ssf-leases.js';
import {
  deleteOutboxEntry,
  listOutbox,
  type OutboxEntry,
  writeOutboxClaims,
  writeOutboxFailure,
} from '../store/repositories/ssf-outbox.js';
import { findStreamById, readSealedAuthorization } from '../store/repositories/ssf-streams.js';

export interface DeliveryOptions {
  /** The HTTP client; by default the broker's outbound client (`net/outbound.ts`), with its rules. */
  outbound?: OutboundClient;
  /** Jitter source, in [0, 1). */
  random?: () => number;
  policy?: Partial<DeliveryPolicy>;
}

/** What one pass did. */
export interface DeliveryReport {
  delivered: number;
  refused: number;
  failed: number;
}

type Ctx = Pick<BrokerContext, 'store' | 'clock' | 'config' | 'keys' | 'kek' | 'logger'>;

interface Resolved {
  policy: DeliveryPolicy;
  outbound: OutboundClient;
  random: () => number;
}

/** A stream's head, leased to this pass. */
interface Claim {
  stream: Stream;
  entry: OutboxEntry;
  claims: Record<string, unknown>;
  token: string;
  sealedAuthorization: string | null;
}

/**
 * Leases the stream and reads its oldest entry, fixing the entry's SET claims the first time
 * it is sent. Undefined when the stream is not ours to serve now (another replica holds it, it
 * is paused, backing off, or empty).
 */
async function claimHead(ctx: Ctx, streamId: string, policy: DeliveryPolicy): Promise<Claim | undefined> {
  return inTransaction(ctx.store, async (tx) => {
    const at = ctx.clock.now();
    const token = randomUUID();
    if (!(await takeLease(tx, streamId, at, at + policy.leaseMs, token))) return undefined;
    const stream = await findStreamById(tx, streamId);
    const [entry] = await listOutbox(tx, streamId, 1);
    if (!stream || !entry) {
      await releaseLease(tx, streamId, token, at);
      return undefined;
    }
    let claims = entry.claims;
    if (claims === null) {
      claims = await buildSetClaims(tx, ctx.config.publicUrl, stream, entry);
      await writeOutboxClaims(tx, streamId, entry.seq, claims);
    }
    return { stream, entry, claims, token, sealedAuthorization: await readSealedAuthorization(tx, streamId) };
  });
}

async function send(ctx: Ctx, claim: Claim, deps: Resolved): Promise<PushOutcome> {
  if (claim.stream.endpointUrl === null) return { kind: 'failed', error: 'no endpoint' };
  const jws = await signSet(ctx.keys.signer(), claim.claims);
  const authorization =
    claim.sealedAuthorization === null ? null : await openSecret(ctx.kek, claim.sealedAuthorization);
  return pushSet(
    deps.outbound,
    { endpointUrl: claim.stream.endpointUrl, authorization },
    jws,
    deps.policy.pushTimeoutMs,
  );
}

/**
 * Records what became of the push and gives the lease back. Delivered or refused: the entry
 * goes, and the next one is due at once. Failed: the entry stays at the head and the stream
 * waits out a backoff, so nothing behind it overtakes it.
 */
async function settle(ctx: Ctx, claim: Claim, outcome: PushOutcome, deps: Resolved): Promise<void> {
  const { stream, entry, token } = claim;
  await inTransaction(ctx.store, async (tx) => {
    const at = ctx.clock.now();
    if (outcome.kind === 'failed') {
      const failures = entry.attempts + 1;
      const next = at + retryDelay(failures, deps.policy, deps.random);
      if (await releaseLease(tx, stream.id, token, next))
        await writeOutboxFailure(tx, stream.id, entry.seq, failures, outcome.error);
      return;
    }
    const removed = await deleteOutboxEntry(tx, stream.id, entry.seq);
    await releaseLease(tx, stream.id, token, at);
    if (outcome.kind === 'refused' && removed) {
      await recordAudit(tx, stream.tenantId, at, {
        actor: 'system',
        action: 'ssf.delivery.refused',
        target: stream.id,
        outcome: 'refused',
        details: {
          jti: entry.jti,
          event: entry.kind,
          err: outcome.err,
          description: outcome.description,
          endpoint_url: endpointForAudit(stream.endpointUrl),
          attempts: entry.attempts + 1,
        },
      });
    }
  });
}

/** Sends a stream's due entries, oldest first, until one fails, the stream runs dry, or the burst is spent. */
async function serveStream(
  ctx: Ctx,
  streamId: string,
  deps: Resolved,
  report: DeliveryReport,
): Promise<void> {
  for (let sent = 0; sent < deps.policy.burst; sent++) {
    const claim = await claimHead(ctx, streamId, deps.policy);
    if (!claim) return;
    const outcome = await send(ctx, claim, deps);
    await settle(ctx, claim, outcome, deps);
    report[outcome.kind] += 1;
    if (outcome.kind === 'failed') {
      ctx.logger.warn(
        {
          stream: streamId,
          jti: claim.entry.jti,
          attempts: claim.entry.attempts + 1,
          error: outcome.error,
          reason: outcome.reason,
        },
        'SSF push failed; will retry',
      );
      return;
    }
    if (outcome.kind === 'refused')
      ctx.logger.warn(
        { stream: streamId, jti: claim.entry.jti, err: outcome.err },
        'SSF receiver refused a SET',
      );
  }
}

/**
 * One pass of the push delivery worker: every push stream due at `now` gets its waiting SETs,
 * in order, at most `concurrency` streams at a time. Safe to run on any number of replicas at
 * once (each stream is served under a lease). Tests drive it directly with a manual clock.
 *
 * @example
 * ```ts
 * clock.advance(60_000);
 * const report = await deliverDue(ctx); // { delivered: 2, refused: 0, failed: 0 }
 * ```
 */
export async function deliverDue(
  ctx: Ctx,
  now: number = ctx.clock.now(),
  options: DeliveryOptions = {},
): Promise<DeliveryReport> {
  const deps: Resolved = {
    policy: { ...DELIVERY_POLICY, ...options.policy },
    outbound: options.outbound ?? outboundOf(ctx),
    random: options.random ?? Math.random,
  };
  const report: DeliveryReport = { delivered: 0, refused: 0, failed: 0 };
  const due = await listDueStreams(ctx.store, now, deps.policy.concurrency * 4);
  let next = 0;
  const worker = async () => {
    while (next < due.length) {
      const streamId = due[next++] as string;
      try {
        await serveStream(ctx, streamId, deps, report);
      } catch (err) {
        // One stream's fault (its store rows, a key) must not hold up the others.
        ctx.logger.error({ err, stream: streamId }, 'SSF delivery failed');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(deps.policy.concurrency, due.length) }, worker));
  return report;
}
