import {
  HEARTBEAT_JWT_TYPE,
  type HeartbeatClaims,
  REVOCATION_EVENT_JWT_TYPE,
  type RevocationEventClaims,
  SNAPSHOT_JWT_TYPE,
  type SnapshotClaims,
} from '@tether-broker/protocol';
import { SignJWT } from 'jose';
import { statusListUri } from '../tokens/access-token.js';
import { type ActiveSigningKey, SIGNING_ALG } from '../tokens/keys.js';
import { encodeStatusList } from '../tokens/status-list-token.js';
import type { RevocationLogEntry } from './log.js';
import type { RevocationSnapshot } from './snapshot.js';

/** Epoch milliseconds → NumericDate (whole seconds, rounded down). */
const seconds = (ms: number) => Math.floor(ms / 1000);

async function sign(key: ActiveSigningKey, typ: string, claims: object): Promise<string> {
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: SIGNING_ALG, typ, kid: key.kid })
    .sign(key.privateKey);
}

/**
 * A revocation event as a compact JWS (`typ` `tether-event+jwt`). `iat` is when the event was
 * written, not when it is sent: the same event signed by the same key always gives the same
 * JWS (Ed25519 is deterministic), however often it is replayed.
 */
export async function signRevocationEvent(
  key: ActiveSigningKey,
  issuer: string,
  entry: RevocationLogEntry,
): Promise<string> {
  const claims: RevocationEventClaims = {
    iss: issuer,
    tenant: entry.tenantId,
    seq: entry.seq,
    ...entry.event,
    iat: seconds(entry.at),
  };
  return sign(key, REVOCATION_EVENT_JWT_TYPE, claims);
}

/**
 * A heartbeat as a compact JWS (`typ` `tether-heartbeat+jwt`): at `at`, the tenant's log held
 * nothing newer than `seq`, and the stream carrying it had sent everything up to `seq`.
 * `at` must be taken before the log was read, or the claim could be false.
 */
export async function signHeartbeat(
  key: ActiveSigningKey,
  issuer: string,
  heartbeat: { tenantId: string; seq: number; at: number },
): Promise<string> {
  const claims: HeartbeatClaims = {
    iss: issuer,
    tenant: heartbeat.tenantId,
    seq: heartbeat.seq,
    // Millisecond precision (RFC 7519 NumericDate may be non-integer): freshness is counted
    // from it, and whole seconds would cost a PEP up to a second of its staleness budget.
    iat: heartbeat.at / 1000,
  };
  return sign(key, HEARTBEAT_JWT_TYPE, claims);
}

/** A snapshot as a compact JWS (`typ` `tether-snapshot+jwt`), standing for position `seq`. */
export async function signSnapshot(
  key: ActiveSigningKey,
  issuer: string,
  snapshot: RevocationSnapshot,
): Promise<string> {
  const claims: SnapshotClaims = {
    iss: issuer,
    tenant: snapshot.tenantId,
    seq: snapshot.seq,
    iat: snapshot.at / 1000,
    status_before: snapshot.statusBefore,
    status_lists: snapshot.statusLists.map((list) => ({
      uri: statusListUri(issuer, list.listId),
      status_list: encodeStatusList(list),
    })),
    ended: snapshot.ended,
    narrowed: snapshot.narrowed,
    cutoff: snapshot.cutoff,
    retired_kids: snapshot.retiredKids,
  };
  return sign(key, SNAPSHOT_JWT_TYPE, claims);
}

/**
 * Signs for every stream of this process, keeping the most recent signatures: one revocation
 * sent to a hundred PEPs is signed once, not a hundred times; so is a heartbeat. A signature
 * is shared from the moment it is asked for, not once it is done: the streams one commit wakes
 * all ask for the same event within the same tick, before the first signature completes.
 */
export class RevocationSigner {
  /** Event signatures, done or under way, by key, tenant and position (oldest first). */
  readonly #cache = new Map<string, Promise<string>>();
  /** Per tenant: the newest heartbeat signed or being signed, which streams at the same position share. */
  readonly #beats = new Map<string, { kid: string; seq: number; at: number; jws: Promise<string> }>();

  readonly #maxEntries: number;
  readonly #heartbeatShareMs: number;

  /**
   * @param options.maxEntries event signatures kept (default 4096).
   * @param options.heartbeatShareMs a heartbeat signed for a read that started at most this long
   *   before another stream's is sent to that stream too: a thousand streams at the head cost
   *   one signature per beat, and a PEP's freshness is understated by at most this much
   *   (default 250).
   */
  constructor(
    private readonly signer: () => ActiveSigningKey,
    private readonly issuer: string,
    options: { maxEntries?: number; heartbeatShareMs?: number } = {},
  ) {
    this.#maxEntries = options.maxEntries ?? 4096;
    this.#heartbeatShareMs = options.heartbeatShareMs ?? 250;
  }

  event(entry: RevocationLogEntry): Promise<string> {
    const key = this.signer();
    const cacheKey = `${key.kid}\u0000${entry.tenantId}\u0000${entry.seq}`;
    const cached = this.#cache.get(cacheKey);
    if (cached !== undefined) return cached;
    const jws = signRevocationEvent(key, this.issuer, entry);
    if (this.#cache.size >= this.#maxEntries) {
      const oldest = this.#cache.keys().next();
      if (!oldest.done) this.#cache.delete(oldest.value);
    }
    this.#cache.set(cacheKey, jws);
    // A failed signature is not kept: the next stream to ask signs again.
    jws.catch(() => {
      if (this.#cache.get(cacheKey) === jws) this.#cache.delete(cacheKey);
    });
    return jws;
  }

  async snapshot(snapshot: RevocationSnapshot): Promise<string> {
    return signSnapshot(this.signer(), this.issuer, snapshot);
  }

  /**
   * A heartbeat for a stream that has sent everything up to `seq`, resting on a read of the log
   * that started at `at`. A heartbeat already signed (or being signed) for the same position is
   * true for this stream as well (at its `at` the log held nothing newer than `seq`, and this
   * stream has sent everything up to `seq`), so it is reused when it is no more than
   * `heartbeatShareMs` older — and newer than `after`, the stream's previous heartbeat (a PEP
   * refuses one older than the last it accepted).
   */
  async heartbeat(
    tenantId: string,
    seq: number,
    at: number,
    after = Number.NEGATIVE_INFINITY,
  ): Promise<{ jws: string; at: number }> {
    const key = this.signer();
    const beat = this.#beats.get(tenantId);
    if (
      beat !== undefined &&
      beat.kid === key.kid &&
      beat.seq === seq &&
      beat.at >= at - this.#heartbeatShareMs &&
      beat.at > after
    )
      return { jws: await beat.jws, at: beat.at };
    const jws = signHeartbeat(key, this.issuer, { tenantId, seq, at });
    const latest = this.#beats.get(tenantId);
    const mine = { kid: key.kid, seq, at, jws };
    if (latest === undefined || at >= latest.at) this.#beats.set(tenantId, mine);
    try {
      return { jws: await jws, at };
    } catch (err) {
      if (this.#beats.get(tenantId) === mine) this.#beats.delete(tenantId);
      throw err;
    }
  }
}
