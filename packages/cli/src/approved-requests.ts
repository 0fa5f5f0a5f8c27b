/**
 * Finding the request to activate by its ticket, shared by `session start --ticket` and
 * `exec --ticket`.
 */
import type { RequestList, RequestView, SessionList } from '@tether-broker/protocol/api';
import { query } from './api.js';
import { CliError, EXIT } from './errors.js';
import { io } from './io.js';
import type { Session } from './session.js';

/** How a caller words the two refusals: the lookup is shared, what it tells the user is not. */
export interface TicketLookupWording {
  /** Appended to the "none is waiting" message, e.g. `; nothing was run`. */
  notFoundSuffix?: string;
  /** How to pick one when the ticket has several, e.g. `name one by its id`. */
  ambiguousHint: string;
}

/**
 * The caller's one approved, not yet activated request for `ticket` (extensions, requests
 * already activated and those whose activation window has passed do not count). Several is
 * an error that lists them, never a guess.
 */
export async function approvedRequestForTicket(
  session: Session,
  ticket: string,
  wording: TicketLookupWording,
): Promise<RequestView> {
  // With --customer, the seat is taken first: `me` is the seat.
  const me = (await session.ready()).identity.principal;
  const [{ requests }, { sessions }] = await Promise.all([
    session.lookup<RequestList>('GET', `/v1/requests${query({ state: 'approved', ticket, principal: me })}`),
    session.lookup<SessionList>('GET', `/v1/sessions${query({ ticket, principal: me })}`),
  ]);
  const activated = new Set(sessions.map((s) => s.request));
  const now = io().now();
  const candidates = requests.filter(
    (r) =>
      r.kind === 'access' &&
      !activated.has(r.id) &&
      (r.activation_expires_at === null || Date.parse(r.activation_expires_at) > now),
  );
  const [only, ...others] = candidates;
  if (!only) {
    throw new CliError(
      'not_found',
      `no approved request of yours for ticket ${ticket} is waiting to be activated${wording.notFoundSuffix ?? ''}`,
      EXIT.refused,
      '`tether requests --mine` shows your requests and their states',
    );
  }
  if (others.length > 0) {
    throw new CliError(
      'ambiguous_ticket',
      `${candidates.length} approved requests for ticket ${ticket}: ${candidates.map((r) => r.id).join(', ')}`,
      EXIT.usage,
      wording.ambiguousHint,
    );
  }
  return only;
}
