import { TetherError } from '@tether-broker/protocol';
import type { Privilege } from './privilege.js';
import { isLive, type Session } from './session.js';

/**
 * Session extensions. The holder of a live session asks for more time; the ask goes through
 * the privilege's approval rule like an access request, and once approved moves the session's
 * hard expiry. The session keeps its id, its key binding (`cnf.jkt`) and its refresh-token
 * chain: nothing the holder has is reissued.
 *
 * The bound is on the session's whole length, not on each extension: from activation to the
 * extended hard expiry may not exceed the privilege's `max_duration`, so a chain of extensions
 * never grants more than one request could have.
 */

/** Only the holder, only while the session is live. */
export function assertMayExtend(session: Session, principalId: string, now: number): void {
  if (session.principalId !== principalId) {
    throw new TetherError('forbidden', 'only the holder of a session may ask to extend it');
  }
  if (session.delegation !== null) {
    throw new TetherError(
      'invalid_request',
      `session ${session.id} is a sub-session: it lasts no longer than it was delegated for; delegate a new one`,
    );
  }
  if (!isLive(session, now)) {
    throw new TetherError(
      'session_not_live',
      `session ${session.id} has ${session.state === 'ended' ? `ended (${session.endReason})` : 'passed its hard expiry'}`,
    );
  }
}

export interface ExtensionBounds {
  /** Seconds from activation to the extended hard expiry. */
  totalSeconds: number;
  /** Epoch ms: the hard expiry once extended. */
  hardExpiresAt: number;
}

/**
 * The session's length and hard expiry with `bySeconds` more, or `duration_exceeds_max` when
 * that length would pass the privilege's `max_duration` (the `max_extension` member says how
 * much is still allowed).
 */
export function extensionBounds(
  session: Pick<Session, 'activatedAt' | 'hardExpiresAt'>,
  privilege: Pick<Privilege, 'name' | 'maxDurationSeconds'>,
  bySeconds: number,
): ExtensionBounds {
  const currentSeconds = Math.ceil((session.hardExpiresAt - session.activatedAt) / 1000);
  const totalSeconds = currentSeconds + bySeconds;
  if (totalSeconds > privilege.maxDurationSeconds) {
    const left = Math.max(0, privilege.maxDurationSeconds - currentSeconds);
    throw new TetherError(
      'duration_exceeds_max',
      `${privilege.name} allows a session of at most ${privilege.maxDurationSeconds} s in all; this one has ` +
        `${currentSeconds} s, so it can be extended by at most ${left} s, not ${bySeconds} s`,
      { extra: { max_duration: privilege.maxDurationSeconds, max_extension: left } },
    );
  }
  return { totalSeconds, hardExpiresAt: session.hardExpiresAt + bySeconds * 1000 };
}
