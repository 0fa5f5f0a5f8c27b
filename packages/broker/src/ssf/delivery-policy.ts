import { backoffDelay } from '@tether-broker/protocol';
/**
 * How the broker pushes SETs (RFC 8935): every number of the delivery worker, in one place.
 * Tests shorten them through the worker's options; operators have no reason to.
 */
export interface DeliveryPolicy {
  /** How long one push may take before it counts as failed. */
  pushTimeoutMs: number;
  /** A replica's claim on a stream's head lasts this long; past it, another replica may send it again. */
  leaseMs: number;
  /** First retry delay; each further failure doubles it… */
  baseDelayMs: number;
  /** …up to this. A receiver that is down is tried at least this often, for as long as it takes. */
  maxDelayMs: number;
  /** How often the worker looks for due streams (other replicas' events, ended backoffs). */
  intervalMs: number;
  /** Streams served at once by one worker pass. */
  concurrency: number;
  /** Events sent on one stream in one pass before the worker moves on (fairness between streams). */
  burst: number;
}

export const DELIVERY_POLICY: DeliveryPolicy = {
  pushTimeoutMs: 10_000,
  leaseMs: 30_000,
  baseDelayMs: 1_000,
  maxDelayMs: 5 * 60_000,
  intervalMs: 1_000,
  concurrency: 8,
  burst: 50,
};

/**
 * The delay before attempt `failures + 1`: exponential in the number of failed attempts,
 * capped, with "equal jitter" (between half and all of it) so that the receivers of one
 * broker, or the replicas of one receiver, do not retry in lockstep. `random` is in [0, 1).
 *
 * @example
 * ```ts
 * retryDelay(1, DELIVERY_POLICY, () => 0.5); // 750 ms: half of 1 s, plus half of the other half
 * ```
 */
export function retryDelay(
  failures: number,
  policy: Pick<DeliveryPolicy, 'baseDelayMs' | 'maxDelayMs'>,
  random: () => number,
): number {
  return Math.ceil(
    backoffDelay(failures, { initialMs: policy.baseDelayMs, maxMs: policy.maxDelayMs }, random),
  );
}
