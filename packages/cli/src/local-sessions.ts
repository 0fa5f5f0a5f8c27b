/**
 * The sessions held on this machine as commands name and show them: which one a command is
 * about, how long one has left, and pruning those past their hard expiry. Shared by
 * `session`, `session extend`, `revoke` and `fetch` (apart from them, so none imports another).
 */

import { formatDuration } from './duration.js';
import { CliError, EXIT } from './errors.js';
import { io } from './io.js';
import { shortTime, warn } from './output.js';
import type { SessionStore } from './session-store.js';

/** `hard expiry` for display: the time, and how long is left while it is ahead. */
export function expiryText(iso: string, now: number): string {
  const left = Math.ceil((Date.parse(iso) - now) / 1000);
  return left > 0 ? `${shortTime(iso)} (in ${formatDuration(left)})` : `${shortTime(iso)} (passed)`;
}

/** Tells the user, on stderr, that a session's local key is gone and why. */
export function noteRemoved(id: string, why: string): void {
  warn(`removed the local key of session ${id} (${why})`);
}

/** Deletes the local files of sessions past their hard expiry, saying so. */
export function pruneExpired(store: SessionStore): void {
  for (const id of store.pruneExpired(io().now())) noteRemoved(id, 'past its hard expiry');
}

/**
 * The session a command is about: the id given, else the current one. Without either, a
 * usage error that says how to name one.
 */
export function targetSession(store: SessionStore, id: string | undefined): string {
  if (id) return id;
  const current = store.current();
  if (!current) {
    throw new CliError(
      'no_session',
      'no current session on this machine; name one by its id',
      EXIT.usage,
      '`tether session list` shows your sessions',
    );
  }
  return current;
}
