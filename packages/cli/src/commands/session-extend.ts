import type { RequestView, SessionView } from '@tether-broker/protocol/api';
import type { Command } from 'commander';
import { seg } from '../api.js';
import { CliError, EXIT } from '../errors.js';
import { io } from '../io.js';
import { expiryText, targetSession } from '../local-sessions.js';
import { lookUpNames } from '../names.js';
import { printJson, say } from '../output.js';
import { requestDetails } from '../render.js';
import { Session } from '../session.js';
import { SessionStore } from '../session-store.js';
import { waitForResolution } from '../wait.js';

export interface ExtendFlags {
  /** Seconds. */
  by: number;
  justification: string;
  wait?: boolean;
}

/**
 * Keeps the local copy of an active session's hard expiry in step with the broker's, so that
 * an extended session's key is not pruned at the old expiry. Under the session's lock: a
 * concurrent `fetch` may be writing new tokens to the same file.
 */
export async function syncStoredExpiry(store: SessionStore, view: SessionView): Promise<void> {
  if (view.state !== 'active' || !store.has(view.id)) return;
  await store.withLock(view.id, async () => {
    const stored = store.load(view.id);
    if (stored.hard_expires_at !== view.hard_expires_at)
      store.save({ ...stored, hard_expires_at: view.hard_expires_at });
  });
}

/**
 * `tether session extend [id] --by 30m`: asks for more time for a session (default: the
 * current one). The ask is a request of kind `extension`, reviewed like any request
 * (`tether approve <request>`); once approved the session's hard expiry moves and it keeps
 * its key and tokens.
 */
export async function extendSession(
  id: string | undefined,
  flags: ExtendFlags,
  command: Command,
): Promise<void> {
  const session = new Session(command);
  const store = SessionStore.fromEnv(session.env);
  const target = targetSession(store, id);
  const created = await session.call<RequestView>('POST', `/v1/sessions/${seg(target)}/extend`, {
    by: flags.by,
    justification: flags.justification,
  });
  const final = flags.wait ? await waitForResolution(session, created) : created;
  const view =
    final.state === 'approved'
      ? await session.call<SessionView>('GET', `/v1/sessions/${seg(target)}`)
      : undefined;
  if (view) await syncStoredExpiry(store, view);
  if (session.json) printJson(final);
  else {
    say(requestDetails(final, await lookUpNames(session, ['principals', 'privileges'])));
    if (view) say(`\nsession ${view.id} now ends ${expiryText(view.hard_expires_at, io().now())}`);
    else if (final.state === 'pending' && !flags.wait)
      say(`\nan approver can run: tether approve ${final.id}`);
  }
  if (flags.wait && final.state !== 'approved') {
    throw new CliError(
      `request_${final.state}`,
      `extension request ${final.id} ended ${final.state}`,
      EXIT.refused,
    );
  }
}
