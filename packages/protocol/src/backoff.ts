/**
 * The wait before retry number `attempt` (1 for the first): `initialMs`, doubled for each
 * further attempt, capped at `maxMs`, with "equal jitter" (between half and all of it) so that
 * the many clients of one broker cut off together do not come back in step. `random` is in
 * [0, 1); `() => 1` gives the whole wait (no jitter), for a single connection of one's own.
 *
 * One rule for every reconnect and redelivery loop (the PEP's revocation stream, the broker's
 * LISTEN connection, SSF and webhook deliveries), so that they cannot drift apart.
 *
 * @example
 * ```ts
 * backoffDelay(1, { initialMs: 1000, maxMs: 60_000 }, () => 0.5); // 750
 * backoffDelay(20, { initialMs: 1000, maxMs: 60_000 }, () => 1); // 60000
 * ```
 */
export function backoffDelay(
  attempt: number,
  bounds: { initialMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const full = Math.min(bounds.maxMs, bounds.initialMs * 2 ** exponent);
  return full / 2 + random() * (full / 2);
}
