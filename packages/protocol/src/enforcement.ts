/**
 * What enforcement points (PEPs) report to the broker, and what the broker reports back about
 * enforcement: acknowledgements of the revocation log, session receipts and decision records.
 *
 * A PEP is a principal with the `pep` role. It follows its tenant's revocation log
 * (`GET /v1/events`), applies the events in order, and says how far it got with
 * `POST /v1/peps/:pep/ack`; it reports its allow/deny decisions with `POST /v1/decisions`.
 * From the acks the broker answers, per ended session, which PEPs have enforced the end and
 * when (`GET /v1/sessions/:id/receipt`).
 */

/**
 * `POST /v1/peps/:pep/ack` (`:pep` is the caller's own principal id or name). Acks are
 * cumulative: `applied` is the newest sequence number the PEP has applied, so one ack covers
 * every event up to it. Send one after applying a batch of events, and at least every few
 * seconds anyway: an ack is also how the broker knows the PEP is live.
 */
export interface PepAckRequest {
  /** The newest position of the tenant's revocation log the PEP has applied (0: none). */
  applied: number;
  /**
   * This PEP process's instance id: random per process start ({@link PEP_INSTANCE_PATTERN}).
   * Replicas sharing one PEP identity each send their own, and a receipt waits for every live
   * instance. Without it the ack counts for one unnamed instance (`-`) of the principal.
   */
  instance?: string;
  /**
   * This instance is stopping (sent once, by a PEP closing cleanly): it serves no more requests,
   * so receipts stop waiting for it at once instead of when it leaves the liveness window.
   */
  leaving?: boolean;
}

/** What an instance id looks like: 16 to 64 URL-safe characters. */
export const PEP_INSTANCE_PATTERN = '^[A-Za-z0-9_-]{16,64}$';

/**
 * `PUT /v1/peps/:pep/audiences` (admins): the audiences a PEP principal enforces. It may record
 * decisions only for these, and only about sessions whose grant names the audience.
 */
export interface PepAudiencesRequest {
  audiences: string[];
}

/** A PEP principal's enforced audiences. */
export interface PepAudiencesAnswer {
  /** The PEP's principal id. */
  pep: string;
  name: string;
  audiences: string[];
}

/** The answer to an ack. */
export interface PepAckAnswer {
  /** What the broker holds for this PEP: never lower than an earlier ack (acks are monotonic). */
  applied: number;
  /** The newest position of the tenant's log. */
  head: number;
}

/** Most decisions one `POST /v1/decisions` may carry. */
export const DECISION_BATCH_MAX = 1000;

/**
 * Longest text the broker takes in each field of a decision; a PEP cuts longer text rather
 * than lose the decision. The whole request must also stay within the broker's body limit
 * (256 KiB by default).
 */
export const DECISION_FIELD_MAX = Object.freeze({
  code: 64,
  action: 256,
  resource: 1024,
  session: 128,
  method: 16,
  path: 2048,
});

/** One decision a PEP made. */
export interface DecisionRecord {
  /** When the PEP decided (epoch milliseconds). */
  at: number;
  allow: boolean;
  /** `ok` for an allow; the denial's error code otherwise (`invalid_token`, `insufficient_scope`, …). */
  code: string;
  action: string;
  resource: string;
  /** The `sid` of the token, when the PEP could read one. */
  session: string | null;
  method?: string;
  /** The request path. The broker never records a query string (it may carry secrets). */
  path?: string;
}

/** `POST /v1/decisions`: a batch of decisions, and the loss since the last batch. */
export interface DecisionReport {
  /**
   * The audience the PEP enforces and decided for: one of its principal's audiences (set by an
   * admin), and every session an allowed decision names must have it in its grant; otherwise
   * the whole batch is refused (`audience_not_enforced`) and nothing is recorded.
   */
  audience: string;
  /** 1 to {@link DECISION_BATCH_MAX} decisions. */
  decisions: DecisionRecord[];
  /** Decisions this PEP dropped (buffer full, batch refused) since its last report. */
  dropped: number;
}

/** The answer to a decision report (HTTP 202). */
export interface DecisionReportAnswer {
  recorded: number;
  dropped: number;
}

/** One PEP in a session receipt. */
export interface PepReceipt {
  /** The PEP's principal id. */
  id: string;
  name: string;
  /** The newest position of the revocation log this PEP has acknowledged. */
  applied: number;
  /** When the broker last heard from it (an ack or a decision report). */
  last_seen_at: string;
  /** Heard from within the broker's liveness window (`pepLivenessSeconds`). */
  live: boolean;
  /**
   * When its first ack covering the session's end arrived; null while it has not, for a live
   * session, or when that ack is older than the broker keeps ack history.
   */
  enforced_at: string | null;
  /**
   * Its live instances (processes that acked within the liveness window), each with its own
   * position: the end is enforced only once every one of them has applied it.
   */
  instances: PepInstanceReceipt[];
}

/** One live process of a PEP in a session receipt. */
export interface PepInstanceReceipt {
  /** The instance id it sends with its acks (`-` for acks that named none). */
  id: string;
  applied: number;
  last_seen_at: string;
  /** When its first ack covering the session's end arrived; null while it has not. */
  enforced_at: string | null;
}

/** `GET /v1/sessions/:id/receipt`: when a session ended, and which PEPs enforce that end. */
export interface SessionReceipt {
  session: string;
  state: 'active' | 'ended';
  ended_at: string | null;
  reason: string | null;
  /** The position of the session's `session_ended` event in the tenant's revocation log. */
  seq: number | null;
  /** The session has ended and every live PEP (every live instance of each) has applied its end. */
  enforced: boolean;
  peps: PepReceipt[];
  /** Names of the live PEPs that have not yet applied the end. */
  pending: string[];
  /** The downstream credentials minted for the session (evidence: never their values). */
  credentials: CredentialReceipt[];
  /** The recording the privilege required; null: none was required. */
  recording: RecordingReceipt | null;
}

/** A downstream credential in a session receipt: minted when, destroyed when, connections cut. */
export interface CredentialReceipt {
  /** The connector's name. */
  connector: string;
  kind: string;
  username: string;
  /** SHA-256 (hex) of the credential's value. */
  fingerprint: string;
  minted_at: string;
  valid_until: string;
  /** Null while it exists. */
  destroyed_at: string | null;
  /** Live connections it had that were terminated when it was destroyed. */
  connections_terminated: number | null;
}

/** A session's recording in its receipt: evidence of what ran, named by one digest. */
export interface RecordingReceipt {
  mode: string;
  chunks: number;
  bytes: number;
  /** Hex SHA-256 chained over every chunk's SHA-256, in order. */
  digest: string;
  /** The final chunk has arrived. */
  complete: boolean;
}
