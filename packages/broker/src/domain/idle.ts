import type { Session } from './session.js';

/**
 * When a session goes idle: its last activity plus its idle timeout, or null when it has none.
 * Activity is the activation, every refresh, and every allowed decision an enforcement point
 * reports for it (`POST /v1/decisions`). The timeout is the one the session was activated with.
 *
 * @example
 * ```ts
 * idleDeadline({ lastActivityAt: 0, idleTimeoutSeconds: 900 }); // 900_000
 * ```
 */
export function idleDeadline(session: Pick<Session, 'lastActivityAt' | 'idleTimeoutSeconds'>): number | null {
  return session.idleTimeoutSeconds === null
    ? null
    : session.lastActivityAt + session.idleTimeoutSeconds * 1000;
}

/** Whether nothing has happened in the session for its whole idle timeout: it must end (`idle`). */
export function isIdle(
  session: Pick<Session, 'lastActivityAt' | 'idleTimeoutSeconds'>,
  now: number,
): boolean {
  const deadline = idleDeadline(session);
  return deadline !== null && now >= deadline;
}

/**
 * What the audit record of an idle end says about it: the timeout, the last activity, and what
 * found the session idle (the sweeper, or a refresh that came too late).
 */
export function idleDetails(
  session: Pick<Session, 'lastActivityAt' | 'idleTimeoutSeconds'>,
  detectedBy: 'sweep' | 'refresh',
): Record<string, unknown> {
  return {
    idle_timeout: session.idleTimeoutSeconds,
    last_activity_at: new Date(session.lastActivityAt).toISOString(),
    detected_by: detectedBy,
  };
}
