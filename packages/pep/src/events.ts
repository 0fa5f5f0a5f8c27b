import {
  HEARTBEAT_JWT_TYPE,
  isEpochSeconds,
  REVOCATION_EVENT_JWT_TYPE,
  REVOCATION_EVENT_TYPES,
  type RevocationEvent,
  readRevocationEvent,
  type SessionEndedData,
  type SessionNarrowedData,
  SNAPSHOT_JWT_TYPE,
  StatusList,
  StatusListError,
} from '@tether-broker/protocol';
import {
  type CryptoKey,
  compactVerify,
  decodeProtectedHeader,
  errors,
  type ProtectedHeaderParameters,
} from 'jose';
import type { KeySource } from './jwks.js';

/** Why a message of the revocation feed was refused. */
export type RevocationMessageRefusalCode =
  /** Not a compact JWS, or its header or claims are missing or of the wrong type. */
  | 'malformed'
  /** The `typ` header is not the one of this kind of message (an event offered as a heartbeat…). */
  | 'wrong_type'
  /** `alg` is not EdDSA, or the key named by `kid` is not an Ed25519 key. */
  | 'wrong_algorithm'
  /** `kid` names no signing key of the broker. */
  | 'unknown_key'
  /** The broker's keys cannot be obtained now (the key source fails closed). */
  | 'keys_unavailable'
  /** The signature does not verify: forged, or altered in transit. */
  | 'bad_signature'
  | 'wrong_issuer'
  /** Signed by the broker, but for another tenant. */
  | 'wrong_tenant'
  /** A well-signed event of a type this PEP does not know: it cannot apply it, so it must not go on. */
  | 'unsupported_event'
  /** An event at or before the position already applied, or a heartbeat older than one already accepted. */
  | 'replayed'
  /** An event after a missing one: resume the stream from {@link RevocationFeedVerifier.position}. */
  | 'gap'
  /** A heartbeat older than `heartbeatMaxAgeMs`. */
  | 'stale'
  /** `iat` lies in the future, beyond the clock tolerance. */
  | 'future';

/** A refused event or heartbeat. `message` never echoes the message's content. */
export class RevocationMessageRefused extends Error {
  override readonly name = 'RevocationMessageRefused';
  readonly code: RevocationMessageRefusalCode;

  constructor(code: RevocationMessageRefusalCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export interface RevocationFeedOptions {
  /** The broker's signing keys (its JWKS), from `jwks.ts`. */
  keys: KeySource;
  /** The broker's issuer URL: the exact `iss` of its events and heartbeats. */
  issuer: string;
  /** This PEP's tenant: messages of any other tenant are refused. */
  tenant: string;
  /** Epoch milliseconds; inject a manual clock in tests. */
  now: () => number;
  /** A heartbeat older than this is refused. Default {@link REVOCATION_FEED_DEFAULTS}.heartbeatMaxAgeMs. */
  heartbeatMaxAgeMs?: number;
  /** How far in the future an `iat` may lie (clock skew). Default 5. */
  clockToleranceSeconds?: number;
  /** The sequence number of the last event already applied (0 for none): the next event must be this + 1. */
  position?: number;
}

/** Defaults and limits of {@link RevocationFeedOptions}, in one place. */
export const REVOCATION_FEED_DEFAULTS = Object.freeze({
  /** The default staleness budget: a heartbeat older than it cannot make a PEP fresh anyway. */
  heartbeatMaxAgeMs: 10_000,
  clockToleranceSeconds: 5,
  /** A larger event or heartbeat is refused before it is parsed. */
  maxMessageBytes: 16 * 1024,
  /**
   * A larger snapshot is refused before it is parsed. Ended sessions travel as status lists
   * (about 15 KB per 32,768 sessions held at once), so this is over 15 million sessions.
   */
  maxSnapshotBytes: 8 * 1024 * 1024,
  /** The most status lists one snapshot may carry, and the most entries each may hold. */
  maxSnapshotStatusLists: 4096,
  maxStatusListEntries: 1 << 20,
});

export interface VerifiedRevocationEvent {
  seq: number;
  /** When the broker wrote the event (epoch milliseconds, whole seconds). */
  issuedAt: number;
  event: RevocationEvent;
}

export interface VerifiedSnapshot {
  /** The position the snapshot stands for; the feed's position is now this. */
  seq: number;
  issuedAt: number;
  /** Epoch seconds: `statusLists` judge tokens issued before this. */
  statusBefore: number;
  /** The tenant's status lists by URI (what tokens name in `status.status_list.uri`). */
  statusLists: Map<string, StatusList>;
  ended: SessionEndedData[];
  narrowed: SessionNarrowedData[];
  /** Epoch seconds; 0 for none. */
  cutoff: number;
  retiredKids: string[];
}

export interface VerifiedHeartbeat {
  /** The newest event of the tenant's log when the heartbeat was made. */
  seq: number;
  /**
   * When the heartbeat was made (epoch milliseconds, whole seconds). Count freshness from
   * this, never from when the heartbeat arrived: a replayed heartbeat then confers nothing
   * beyond what the original did.
   */
  issuedAt: number;
  /** Every event up to `seq` has been applied: the PEP was fresh at `issuedAt`. */
  caughtUp: boolean;
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Verifies the messages of one tenant's revocation feed (`GET /v1/events`), in the order they
 * arrive, and keeps the feed's position. An event is accepted only if it is signed by the
 * broker, for this issuer and tenant, and is the very next one (`seq` = position + 1); the
 * position then advances. A heartbeat is accepted only if it is signed likewise, younger than
 * `heartbeatMaxAgeMs`, no older than the last one accepted, and not behind the position.
 * Anything else is refused with {@link RevocationMessageRefused} and changes nothing, so a
 * forged, altered or replayed message can neither revoke nor refresh anything.
 *
 * Feed it one message at a time (await each call): the checks and the position go together.
 *
 * @example
 * ```ts
 * const feed = new RevocationFeedVerifier({ keys, issuer: brokerUrl, tenant, now: Date.now });
 * const { event } = await feed.verifyEvent(message.data); // then apply it to the mirror
 * const beat = await feed.verifyHeartbeat(other.data);
 * if (beat.caughtUp) freshAt = beat.issuedAt;
 * ```
 */
export class RevocationFeedVerifier {
  readonly #keys: KeySource;
  readonly #issuer: string;
  readonly #tenant: string;
  readonly #now: () => number;
  readonly #maxAgeMs: number;
  readonly #toleranceMs: number;
  #position: number;
  #lastBeat: { seq: number; issuedAt: number } | undefined;

  constructor(options: RevocationFeedOptions) {
    if (typeof options.issuer !== 'string' || options.issuer === '')
      throw new TypeError('RevocationFeedVerifier: issuer is required');
    if (typeof options.tenant !== 'string' || options.tenant === '')
      throw new TypeError('RevocationFeedVerifier: tenant is required');
    if (typeof options.now !== 'function')
      throw new TypeError('RevocationFeedVerifier: now must be a function');
    const maxAgeMs = options.heartbeatMaxAgeMs ?? REVOCATION_FEED_DEFAULTS.heartbeatMaxAgeMs;
    const tolerance = options.clockToleranceSeconds ?? REVOCATION_FEED_DEFAULTS.clockToleranceSeconds;
    const position = options.position ?? 0;
    if (!Number.isFinite(maxAgeMs) || maxAgeMs <= 0)
      throw new TypeError('RevocationFeedVerifier: heartbeatMaxAgeMs must be positive');
    if (!Number.isFinite(tolerance) || tolerance < 0)
      throw new TypeError('RevocationFeedVerifier: clockToleranceSeconds must not be negative');
    if (!Number.isSafeInteger(position) || position < 0)
      throw new TypeError('RevocationFeedVerifier: position must be a non-negative integer');
    this.#keys = options.keys;
    this.#issuer = options.issuer;
    this.#tenant = options.tenant;
    this.#now = options.now;
    this.#maxAgeMs = maxAgeMs;
    this.#toleranceMs = tolerance * 1000;
    this.#position = position;
  }

  /** The sequence number of the last event accepted: resume the stream after it (`Last-Event-ID`). */
  get position(): number {
    return this.#position;
  }

  /**
   * Verifies the data of an SSE `revocation` message and, if it is the next event, advances
   * the position to it.
   *
   * @throws RevocationMessageRefused when it is refused; the position is unchanged.
   */
  async verifyEvent(jws: string): Promise<VerifiedRevocationEvent> {
    const claims = await this.#verify(jws, REVOCATION_EVENT_JWT_TYPE);
    const seq = readSeq(claims.seq, 1);
    const issuedAt = this.#readIat(claims.iat);
    const event = readRevocationEvent(claims.type, claims.data);
    if (event === undefined) {
      throw (REVOCATION_EVENT_TYPES as readonly unknown[]).includes(claims.type)
        ? refused('malformed', 'the event data does not fit its type')
        : refused('unsupported_event', 'the event type is not one this enforcement point knows');
    }
    if (seq <= this.#position)
      throw refused('replayed', `event ${seq} is at or before position ${this.#position}`);
    if (seq !== this.#position + 1)
      throw refused('gap', `event ${seq} follows position ${this.#position}: events are missing`);
    this.#position = seq;
    return { seq, issuedAt, event };
  }

  /**
   * Verifies the data of an SSE `snapshot` message (sent when the events after the position
   * were compacted away) and moves the position to the snapshot's. A snapshot never moves the
   * position back: one older than the position is refused as replayed.
   *
   * @throws RevocationMessageRefused when it is refused; the position is unchanged.
   */
  async verifySnapshot(jws: string): Promise<VerifiedSnapshot> {
    const claims = await this.#verify(jws, SNAPSHOT_JWT_TYPE, REVOCATION_FEED_DEFAULTS.maxSnapshotBytes);
    const seq = readSeq(claims.seq, 0);
    const issuedAt = this.#readIat(claims.iat);
    const snapshot = readSnapshotContent(claims);
    if (seq < this.#position)
      throw refused('replayed', `the snapshot at ${seq} is behind position ${this.#position}`);
    this.#position = seq;
    return { seq, issuedAt, ...snapshot };
  }

  /**
   * Verifies the data of an SSE `heartbeat` message. A heartbeat whose `seq` is ahead of the
   * position is accepted with `caughtUp: false`: the PEP has missed events and is not fresh.
   *
   * @throws RevocationMessageRefused when it is refused.
   */
  async verifyHeartbeat(jws: string): Promise<VerifiedHeartbeat> {
    const claims = await this.#verify(jws, HEARTBEAT_JWT_TYPE);
    const seq = readSeq(claims.seq, 0);
    const issuedAt = this.#readIat(claims.iat);
    if (this.#now() - issuedAt > this.#maxAgeMs)
      throw refused('stale', `the heartbeat is older than ${this.#maxAgeMs} ms`);
    const last = this.#lastBeat;
    if (last !== undefined && (issuedAt < last.issuedAt || seq < last.seq))
      throw refused('replayed', 'the heartbeat is older than one already accepted');
    if (seq < this.#position)
      throw refused('replayed', `the heartbeat's seq ${seq} is behind the events already applied`);
    this.#lastBeat = { seq, issuedAt };
    return { seq, issuedAt, caughtUp: seq === this.#position };
  }

  async #verify(
    jws: string,
    typ: string,
    maxBytes: number = REVOCATION_FEED_DEFAULTS.maxMessageBytes,
  ): Promise<Record<string, unknown>> {
    // Size first: the pattern test below is linear, but there is no reason to run it on megabytes.
    if (typeof jws !== 'string' || jws.length > maxBytes)
      throw refused('malformed', `the message is not a string of at most ${maxBytes} bytes`);
    if (!COMPACT_JWS.test(jws)) throw refused('malformed', 'the message is not a compact JWS');
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(jws);
    } catch (cause) {
      throw refused('malformed', 'the message header is not base64url-encoded JSON', cause);
    }
    if (typeof header.typ !== 'string' || header.typ.toLowerCase() !== typ)
      throw refused('wrong_type', `the message typ must be ${typ}`);
    if (header.alg !== 'EdDSA') throw refused('wrong_algorithm', 'the message alg must be EdDSA');
    if (typeof header.kid !== 'string' || header.kid === '')
      throw refused('malformed', 'the message has no kid');
    const key = await this.#key(header.kid);
    let bytes: Uint8Array;
    try {
      ({ payload: bytes } = await compactVerify(jws, key, { algorithms: ['EdDSA'] }));
    } catch (cause) {
      if (cause instanceof errors.JWSSignatureVerificationFailed)
        throw refused('bad_signature', 'the message signature does not verify', cause);
      throw refused('malformed', 'the message is not a valid JWS', cause);
    }
    let claims: unknown;
    try {
      claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch (cause) {
      throw refused('malformed', 'the message payload is not JSON', cause);
    }
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims))
      throw refused('malformed', 'the message payload is not a JSON object');
    const record = claims as Record<string, unknown>;
    if (record.iss !== this.#issuer) throw refused('wrong_issuer', 'the message iss is not the broker');
    if (record.tenant !== this.#tenant)
      throw refused('wrong_tenant', 'the message belongs to another tenant');
    return record;
  }

  async #key(kid: string): Promise<CryptoKey> {
    let key: CryptoKey | undefined;
    try {
      key = await this.#keys.getKey(kid);
    } catch (cause) {
      throw refused('keys_unavailable', 'the broker signing keys are unavailable', cause);
    }
    if (key === undefined) throw refused('unknown_key', 'the message kid is not a signing key of the broker');
    if ((key.algorithm as { name?: string }).name !== 'Ed25519')
      throw refused('wrong_algorithm', 'the key named by kid is not an Ed25519 key');
    return key;
  }

  /** `iat` in epoch milliseconds; refused when missing or in the future. */
  #readIat(iat: unknown): number {
    if (typeof iat !== 'number' || !Number.isFinite(iat) || iat < 0)
      throw refused('malformed', 'claim iat is missing or not a number');
    const issuedAt = iat * 1000;
    if (issuedAt > this.#now() + this.#toleranceMs) throw refused('future', 'claim iat is in the future');
    return issuedAt;
  }
}

/**
 * The lists of a snapshot's claims, each checked (a broker-signed snapshot that does not fit
 * is refused whole: applying part of one could let an ended session through).
 */
function readSnapshotContent(claims: Record<string, unknown>): Omit<VerifiedSnapshot, 'seq' | 'issuedAt'> {
  // Members a broker before compact snapshots did not send read as empty.
  const {
    ended = [],
    narrowed = [],
    retired_kids = [],
    status_lists = [],
    status_before = 0,
    cutoff = 0,
  } = claims;
  if (![ended, narrowed, retired_kids, status_lists].every(Array.isArray))
    throw refused('malformed', 'a snapshot list is not an array');
  if (!isEpochSeconds(status_before) || !isEpochSeconds(cutoff))
    throw refused('malformed', 'status_before or cutoff is not epoch seconds');
  const entries = (list: unknown[], type: 'session_ended' | 'session_narrowed') =>
    list.map((item) => {
      const event = readRevocationEvent(type, item);
      if (event?.type !== type) throw refused('malformed', 'a snapshot entry is malformed');
      return event.data;
    });
  const retiredKids = (retired_kids as unknown[]).map((kid) => {
    if (typeof kid !== 'string' || kid === '') throw refused('malformed', 'a retired kid is malformed');
    return kid;
  });
  const statusLists = readStatusLists(status_lists as unknown[]);
  return {
    statusBefore: status_before,
    statusLists,
    ended: entries(ended as unknown[], 'session_ended') as SessionEndedData[],
    narrowed: entries(narrowed as unknown[], 'session_narrowed') as SessionNarrowedData[],
    cutoff,
    retiredKids,
  };
}

/** A snapshot's status lists by URI, decoded within the feed's bounds (a list may be a decompression bomb). */
function readStatusLists(lists: unknown[]): Map<string, StatusList> {
  if (lists.length > REVOCATION_FEED_DEFAULTS.maxSnapshotStatusLists)
    throw refused('malformed', 'the snapshot carries too many status lists');
  const statusLists = new Map<string, StatusList>();
  for (const item of lists) {
    const { uri, status_list } = (typeof item === 'object' && item !== null ? item : {}) as Record<
      string,
      unknown
    >;
    if (typeof uri !== 'string' || uri === '' || statusLists.has(uri))
      throw refused('malformed', 'a snapshot status list has no URI, or a repeated one');
    try {
      statusLists.set(
        uri,
        StatusList.decode(status_list as { bits: number; lst: string }, {
          maxEntries: REVOCATION_FEED_DEFAULTS.maxStatusListEntries,
        }),
      );
    } catch (cause) {
      if (cause instanceof StatusListError)
        throw refused('malformed', 'a snapshot status list is malformed', cause);
      throw cause;
    }
  }
  return statusLists;
}

function readSeq(value: unknown, min: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < min)
    throw refused('malformed', 'claim seq is missing or not a valid sequence number');
  return value as number;
}

function refused(
  code: RevocationMessageRefusalCode,
  message: string,
  cause?: unknown,
): RevocationMessageRefused {
  return new RevocationMessageRefused(code, message, cause === undefined ? undefined : { cause });
}
