/**
 * The revocation log as it travels from the broker to enforcement points (PEPs).
 *
 * The broker appends an event, numbered per tenant (`seq` 1, 2, 3, … with no gaps), in the
 * same transaction as the state change it reports. `GET /v1/events` streams them as
 * Server-Sent Events: each event is one SSE message `id: <seq>`, `event: revocation`,
 * `data: <compact JWS>`; a heartbeat is `event: heartbeat`, `data: <compact JWS>` without an
 * `id`. Both JWS are signed with the broker's access-token signing key (EdDSA), so no relay
 * can forge a revocation or fake freshness.
 */

/** `typ` header of a signed revocation event. */
export const REVOCATION_EVENT_JWT_TYPE = 'tether-event+jwt';
/** `typ` header of a signed heartbeat. */
export const HEARTBEAT_JWT_TYPE = 'tether-heartbeat+jwt';
/** `typ` header of a signed snapshot of the log's effect, sent instead of compacted events. */
export const SNAPSHOT_JWT_TYPE = 'tether-snapshot+jwt';
/** SSE `event:` field of a snapshot. */
export const SSE_SNAPSHOT_EVENT = 'snapshot';
/** SSE `event:` field of a revocation event. */
export const SSE_REVOCATION_EVENT = 'revocation';
/** SSE `event:` field of a heartbeat. */
export const SSE_HEARTBEAT_EVENT = 'heartbeat';

export const REVOCATION_EVENT_TYPES = [
  'session_ended',
  'session_narrowed',
  'key_retired',
  'tenant_cutoff',
] as const;
export type RevocationEventType = (typeof REVOCATION_EVENT_TYPES)[number];

/**
 * A session has ended: refuse every token naming `sid`. There is no `jti`: the session is
 * what is revoked, not one token. A PEP may forget the entry once `session_exp` (epoch
 * seconds, the session's hard expiry, also a claim of every token of the session) has
 * passed: the tokens refuse themselves from then on.
 */
export interface SessionEndedData {
  sid: string;
  reason: string;
  session_exp: number;
}

/**
 * A live session's entitlement was narrowed (a policy, group or privilege change): refuse its
 * tokens issued (`iat`) before `before` (epoch seconds). The broker issues the session's later
 * tokens with `iat` ≥ `before`, so the next refresh gets a token that passes, carrying the
 * narrower `authorization_details`. Forgettable after `session_exp`, like `session_ended`.
 */
export interface SessionNarrowedData {
  sid: string;
  before: number;
  session_exp: number;
}

/** A broker signing key is retired: refuse every token whose header names `kid`. */
export interface KeyRetiredData {
  kid: string;
}

/** Refuse every token of the tenant issued (`iat`) before `before` (epoch seconds). */
export interface TenantCutoffData {
  before: number;
}

/** One entry of the revocation log: what happened, without its position. */
export type RevocationEvent =
  | { type: 'session_ended'; data: SessionEndedData }
  | { type: 'session_narrowed'; data: SessionNarrowedData }
  | { type: 'key_retired'; data: KeyRetiredData }
  | { type: 'tenant_cutoff'; data: TenantCutoffData };

/** Claims of a signed revocation event (`typ` {@link REVOCATION_EVENT_JWT_TYPE}). */
export type RevocationEventClaims = RevocationEvent & {
  iss: string;
  tenant: string;
  /** Position in the tenant's log: 1 for the first event, no gaps. */
  seq: number;
  /** When the event was written (epoch seconds). */
  iat: number;
};

/**
 * Claims of a signed heartbeat (`typ` {@link HEARTBEAT_JWT_TYPE}): at `iat`, the newest event
 * of `tenant` committed was `seq` (0 when the log is empty), and the stream had sent every
 * event up to it. A PEP that holds every event up to `seq` was fresh at `iat`.
 */
export interface HeartbeatClaims {
  iss: string;
  tenant: string;
  seq: number;
  iat: number;
}

/**
 * Checks an event's `type` and `data` (as read from a JWS or a store row) and returns a
 * copy holding only the known members, or `undefined` when either does not fit.
 *
 * @example
 * ```ts
 * const event = readRevocationEvent(claims.type, claims.data);
 * if (event === undefined) throw new Error('unknown or malformed event');
 * ```
 */
export function readRevocationEvent(type: unknown, data: unknown): RevocationEvent | undefined {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return undefined;
  const d = data as Record<string, unknown>;
  switch (type) {
    case 'session_ended':
      return isText(d.sid) && isText(d.reason) && isEpochSeconds(d.session_exp)
        ? { type, data: { sid: d.sid, reason: d.reason, session_exp: d.session_exp } }
        : undefined;
    case 'session_narrowed':
      return isText(d.sid) && isEpochSeconds(d.before) && isEpochSeconds(d.session_exp)
        ? { type, data: { sid: d.sid, before: d.before, session_exp: d.session_exp } }
        : undefined;
    case 'key_retired':
      return isText(d.kid) ? { type, data: { kid: d.kid } } : undefined;
    case 'tenant_cutoff':
      return isEpochSeconds(d.before) ? { type, data: { before: d.before } } : undefined;
    default:
      return undefined;
  }
}

function isText(value: unknown): value is string {
  return typeof value === 'string' && value !== '';
}

/** A NumericDate in whole seconds that a Tether message may carry (a non-negative safe integer). */
export function isEpochSeconds(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * One status list of the tenant inside a snapshot: the Token Status List encoding
 * (draft-ietf-oauth-status-list §4, `bits` and `lst`) of the list every token names in its
 * `status.status_list.uri` claim. An entry that reads INVALID is a session that has ended.
 */
export interface SnapshotStatusList {
  uri: string;
  status_list: { bits: number; lst: string };
}

/**
 * Claims of a signed snapshot (`typ` {@link SNAPSHOT_JWT_TYPE}): what the tenant's log up to
 * `seq` means for live tokens, sent instead of the events themselves when a PEP starts far
 * behind (from 0, or from a position compacted away). The stream continues after `seq`.
 *
 * Its size grows gently with ended sessions: they travel as the tenant's status lists (one
 * bit per slot, compressed), not one by one. A token is refused by the lists when its entry
 * reads INVALID and it was issued (`iat`) before `status_before`; sessions that ended around
 * and after that instant are listed by `sid` in `ended`. Both rules together are exact: a
 * slot is reused only after its session's hard expiry, so a token issued before
 * `status_before` that names an INVALID entry belongs to the ended session (or has expired by
 * itself), and a token issued later names a slot the lists cannot have seen reused.
 * Narrowings and the tenant cut-off still in force are listed; any that were compacted away
 * refused only tokens that have since expired by themselves.
 */
export interface SnapshotClaims {
  iss: string;
  tenant: string;
  /** The log position the snapshot stands for: every event up to it is reflected. */
  seq: number;
  iat: number;
  /** Epoch seconds: the status lists refuse tokens issued before this. */
  status_before: number;
  status_lists: SnapshotStatusList[];
  /** Sessions ended recently (around `status_before` and after), by id. */
  ended: SessionEndedData[];
  /** Live sessions whose tokens issued before `before` are refused. */
  narrowed: SessionNarrowedData[];
  /** Epoch seconds: every token of the tenant issued before it is refused (0: none). */
  cutoff: number;
  retired_kids: string[];
}
