import {
  type RevocationEvent,
  type SessionEndedData,
  type SessionNarrowedData,
  type StatusList,
  TOKEN_STATUS,
} from '@tether-broker/protocol';

/** What the mirror knows about one token, as the enforcer asks it. */
export interface MirrorQuery {
  sid: string;
  /** The `kid` of the token's signature. */
  kid: string;
  /** The token's `iat` (epoch seconds). */
  iat: number;
  /** The token's `status.status_list` claim: its session's entry in a status list. */
  status?: { uri: string; idx: number };
}

/** What a snapshot hands the mirror (verified by `RevocationFeedVerifier.verifySnapshot`). */
export interface MirrorSnapshot {
  ended: SessionEndedData[];
  narrowed?: SessionNarrowedData[];
  cutoff?: number;
  retiredKids: string[];
  /** Status lists by URI, judging tokens issued before `statusBefore` (epoch seconds). */
  statusLists?: Map<string, StatusList>;
  statusBefore?: number;
}

/** Why the mirror refuses a token; undefined when it does not. */
export type MirrorRefusal =
  | { kind: 'session_ended'; reason: string }
  | { kind: 'session_narrowed' }
  | { kind: 'key_retired' }
  | { kind: 'tenant_cutoff' };

/**
 * A PEP's copy of its tenant's revocation log, reduced to what decides a request: the
 * sessions that have ended (until their hard expiry, after which their tokens refuse
 * themselves), the signing keys retired, and the tenant-wide cut-off. Pure state: the
 * follower feeds it verified events in order; the enforcer asks it about each token.
 *
 * Freshness is kept here too: `confirmFresh(at)` records that at broker time `at` every event
 * up to the feed's position had been applied (a caught-up, signed heartbeat). The enforcer
 * denies everything when that instant is older than its staleness budget.
 */
export class RevocationMirror {
  /** sid → { reason, session_exp (epoch seconds) }. */
  readonly #ended = new Map<string, { reason: string; sessionExp: number }>();
  /** sid → { before (epoch seconds): tokens issued earlier are refused, session_exp }. */
  readonly #narrowed = new Map<string, { before: number; sessionExp: number }>();
  readonly #retiredKids = new Set<string>();
  /** The last snapshot's status lists: an INVALID entry refuses tokens issued before `before`. */
  #statuses: { lists: Map<string, StatusList>; before: number } = { lists: new Map(), before: 0 };
  #cutoff = 0;
  #position = 0;
  #freshAt: number | undefined;

  /** The sequence number of the last event applied (0 for none). */
  get position(): number {
    return this.#position;
  }

  /** When (broker time, epoch ms) the mirror was last confirmed complete; undefined before the first confirmation. */
  get freshAt(): number | undefined {
    return this.#freshAt;
  }

  /** How many ended sessions are remembered (for metrics). */
  get endedSessions(): number {
    return this.#ended.size;
  }

  /** Applies the event at `seq`; the caller has verified it is the next one. */
  apply(seq: number, event: RevocationEvent): void {
    switch (event.type) {
      case 'session_ended':
        this.#ended.set(event.data.sid, { reason: event.data.reason, sessionExp: event.data.session_exp });
        break;
      case 'session_narrowed':
        this.#narrow(event.data);
        break;
      case 'key_retired':
        this.#retiredKids.add(event.data.kid);
        break;
      case 'tenant_cutoff':
        this.#cutoff = Math.max(this.#cutoff, event.data.before);
        break;
    }
    this.#position = seq;
  }

  /**
   * Applies a snapshot standing for position `seq`: its ended sessions, narrowings, retired
   * keys and cut-off are added to what the mirror holds (a snapshot never un-ends a session),
   * its status lists replace the previous snapshot's (a later snapshot flags every entry an
   * earlier one did whose tokens can still be valid), and the position moves to `seq`.
   */
  applySnapshot(seq: number, snapshot: MirrorSnapshot): void {
    for (const e of snapshot.ended) this.#ended.set(e.sid, { reason: e.reason, sessionExp: e.session_exp });
    for (const n of snapshot.narrowed ?? [])
      this.apply(this.#position, { type: 'session_narrowed', data: n });
    for (const kid of snapshot.retiredKids) this.#retiredKids.add(kid);
    this.#cutoff = Math.max(this.#cutoff, snapshot.cutoff ?? 0);
    if (snapshot.statusLists !== undefined)
      this.#statuses = { lists: snapshot.statusLists, before: snapshot.statusBefore ?? 0 };
    this.#position = seq;
  }

  /** A narrowing never moves a session's line back. */
  #narrow(data: SessionNarrowedData): void {
    const earlier = this.#narrowed.get(data.sid)?.before ?? 0;
    this.#narrowed.set(data.sid, { before: Math.max(earlier, data.before), sessionExp: data.session_exp });
  }

  /** Every event up to the position was applied at broker time `at` (epoch ms). Never moves back. */
  confirmFresh(at: number): void {
    if (this.#freshAt === undefined || at > this.#freshAt) this.#freshAt = at;
  }

  /** Whether the mirror was confirmed complete within `budgetMs` of `now`. */
  isFresh(now: number, budgetMs: number): boolean {
    return this.#freshAt !== undefined && now - this.#freshAt <= budgetMs;
  }

  /** Why the token must be refused, or undefined. */
  check(token: MirrorQuery): MirrorRefusal | undefined {
    const ended = this.#ended.get(token.sid);
    if (ended !== undefined) return { kind: 'session_ended', reason: ended.reason };
    const narrowed = this.#narrowed.get(token.sid);
    if (narrowed !== undefined && token.iat < narrowed.before) return { kind: 'session_narrowed' };
    if (this.#retiredKids.has(token.kid)) return { kind: 'key_retired' };
    if (token.iat < this.#cutoff) return { kind: 'tenant_cutoff' };
    if (token.status !== undefined && token.iat < this.#statuses.before) {
      const list = this.#statuses.lists.get(token.status.uri);
      const idx = token.status.idx;
      if (list !== undefined && idx < list.size && list.get(idx) !== TOKEN_STATUS.VALID)
        return { kind: 'session_ended', reason: 'ended' };
    }
    return undefined;
  }

  /**
   * Forgets ended sessions whose hard expiry is more than `leewaySeconds` past: every token of
   * such a session is refused by its own `session_exp` claim. Returns how many were dropped.
   */
  prune(nowSeconds: number, leewaySeconds: number): number {
    let dropped = 0;
    for (const [sid, entry] of this.#ended) {
      if (nowSeconds >= entry.sessionExp + leewaySeconds) {
        this.#ended.delete(sid);
        dropped++;
      }
    }
    for (const [sid, entry] of this.#narrowed) {
      if (nowSeconds >= entry.sessionExp + leewaySeconds) {
        this.#narrowed.delete(sid);
        dropped++;
      }
    }
    return dropped;
  }
}
