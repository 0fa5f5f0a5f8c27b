import { StatusList, TOKEN_STATUS } from '@tether-broker/protocol';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import type { TetherAccessClaims } from './access-token-claims.js';
import type { BrokerLink } from './broker-link.js';
import type { KeySource } from './jwks.js';
import type { PepLogger } from './logger.js';

/** What a fallback says about a token while the mirror is stale. */
export type FallbackVerdict = 'valid' | 'revoked' | 'unavailable';

export interface RevocationFallbackOptions {
  link: BrokerLink;
  keys: KeySource;
  now: () => number;
  log: PepLogger;
  /** Check the token's entry in its status list (cached for the list's `ttl`). */
  statusList: boolean;
  /** Ask the broker (RFC 7662) when the status list cannot answer. */
  introspection: boolean;
}

interface CachedList {
  list: StatusList;
  /** Epoch ms until which the list may be used: its `ttl` from `iat`, never past `exp`. */
  until: number;
}

/**
 * What a stale PEP may still rely on, when configured: the broker's signed Token Status Lists
 * (draft-ietf-oauth-status-list; each token names its list and index), used no longer than
 * their `ttl`, and RFC 7662 introspection. Either answers for one token; neither restores
 * freshness. A list URI outside the broker's issuer is never fetched (the token names it, and
 * the PEP must not be steered to other hosts).
 */
export class RevocationFallback {
  readonly #o: RevocationFallbackOptions;
  readonly #lists = new Map<string, CachedList>();
  readonly #fetching = new Map<string, Promise<CachedList | undefined>>();

  constructor(options: RevocationFallbackOptions) {
    this.#o = options;
  }

  async check(token: string, claims: TetherAccessClaims): Promise<FallbackVerdict> {
    if (this.#o.statusList) {
      const status = await this.#statusOf(claims.status.status_list);
      if (status !== undefined) return status === TOKEN_STATUS.VALID ? 'valid' : 'revoked';
    }
    if (this.#o.introspection) {
      try {
        const answer = (await this.#o.link.postForm('/oauth/introspect', { token })) as { active?: unknown };
        return answer?.active === true ? 'valid' : 'revoked';
      } catch (err) {
        this.#o.log.warn({ err: (err as Error).message }, 'introspection fallback failed');
      }
    }
    return 'unavailable';
  }

  async #statusOf(ref: { uri: string; idx: number }): Promise<number | undefined> {
    const prefix = `${this.#o.link.issuer}/`;
    if (typeof ref?.uri !== 'string' || !ref.uri.startsWith(prefix)) return undefined;
    let cached = this.#lists.get(ref.uri);
    if (cached === undefined || this.#o.now() >= cached.until) {
      let pending = this.#fetching.get(ref.uri);
      if (pending === undefined) {
        pending = this.#fetch(ref.uri).finally(() => this.#fetching.delete(ref.uri));
        this.#fetching.set(ref.uri, pending);
      }
      cached = await pending;
    }
    if (cached === undefined) return undefined;
    try {
      return cached.list.get(ref.idx);
    } catch {
      return undefined; // an index outside the list: no answer, so no allowance
    }
  }

  async #fetch(uri: string): Promise<CachedList | undefined> {
    try {
      const path = uri.slice(this.#o.link.issuer.length);
      const jwt = await this.#o.link.getText(path, 'application/statuslist+jwt');
      const { kid } = decodeProtectedHeader(jwt);
      const key = typeof kid === 'string' ? await this.#o.keys.getKey(kid) : undefined;
      if (key === undefined) throw new Error('the status list is not signed by a broker key');
      const { payload } = await jwtVerify(jwt, key, {
        algorithms: ['EdDSA'],
        typ: 'statuslist+jwt',
        issuer: this.#o.link.issuer,
        subject: uri,
        currentDate: new Date(this.#o.now()),
        requiredClaims: ['iat', 'exp'],
      });
      const claim = payload.status_list as { bits: number; lst: string };
      const ttl = typeof payload.ttl === 'number' && payload.ttl > 0 ? payload.ttl : 0;
      const entry: CachedList = {
        list: StatusList.decode(claim),
        until: Math.min((payload.exp as number) * 1000, ((payload.iat as number) + ttl) * 1000),
      };
      this.#lists.set(uri, entry);
      return entry;
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message }, 'status list fallback unavailable');
      return undefined;
    }
  }
}
