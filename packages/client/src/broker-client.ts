import type { IdentityFile, OAuthErrorBody, Problem } from '@tether-broker/protocol';
import type { JWK } from 'jose';
import { createClientAssertion } from './client-assertion.js';
import { createDpopProof } from './dpop-proof.js';
import { generateSessionKey, type SessionKey, sessionKeyFromJwk } from './session-key.js';

/** An error answered by the broker, with its stable code. */
export class BrokerError extends Error {
  override readonly name = 'BrokerError';
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly body: unknown,
  ) {
    super(`${code}: ${detail}`);
  }
}

export interface BrokerClientOptions {
  identity: IdentityFile;
  /** Defaults to the identity's broker. */
  baseUrl?: string;
  /** A fetch implementation (tests pass one that talks to an in-process app). */
  fetch?: typeof fetch;
  now?: () => number;
  /** Bind broker-API tokens to a DPoP key held by this client (default true). */
  dpop?: boolean;
}

interface CachedToken {
  value: string;
  refreshAt: number;
}

/**
 * Talks to the broker API as one principal: authenticates with a signed client assertion
 * (the private key never leaves this process) and reuses the short-lived token it gets.
 *
 * @example
 * ```ts
 * const client = new BrokerClient({ identity: loadIdentity('~/.tether/identity.json') });
 * const me = await client.call('GET', '/v1/me');
 * ```
 */
export class BrokerClient {
  readonly baseUrl: string;
  readonly identity: IdentityFile;
  #fetch: typeof fetch;
  #now: () => number;
  #token: CachedToken | undefined;
  #bearer: CachedToken | undefined;
  #key: Promise<SessionKey> | undefined;
  readonly #dpop: boolean;
  #nonce: string | undefined;

  constructor(options: BrokerClientOptions) {
    this.identity = options.identity;
    this.baseUrl = (options.baseUrl ?? options.identity.broker).replace(/\/+$/, '');
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now ?? Date.now;
    this.#dpop = options.dpop ?? true;
  }

  /**
   * The broker-API token `call()` uses: DPoP-bound to this client's own key unless the client
   * was created with `dpop: false`. Fetched at `/oauth/token` when the cached one is near expiry.
   */
  async accessToken(): Promise<string> {
    const login = this.identity.login;
    if (login) {
      // A token from tether login: bound to the identity's key, good until it expires.
      if (this.#now() >= Date.parse(login.expires_at) - 30_000)
        throw new BrokerError(
          401,
          'login_expired',
          'the sign-in from tether login has expired: run tether login again',
          undefined,
        );
      return login.token;
    }
    if (!this.#dpop) return this.bearerToken();
    this.#token = await this.#fresh(this.#token, true);
    return this.#token.value;
  }

  /**
   * An unbound (Bearer) broker-API token, for tools that cannot sign DPoP proofs. Prefer
   * `call()`: a Bearer token is usable by whoever holds it until it expires.
   */
  async bearerToken(): Promise<string> {
    if (this.identity.login)
      throw new BrokerError(
        400,
        'invalid_request',
        'a tether login token is DPoP-bound: there is no Bearer token',
        undefined,
      );
    this.#bearer = await this.#fresh(this.#bearer, false);
    return this.#bearer.value;
  }

  async #fresh(cached: CachedToken | undefined, bound: boolean): Promise<CachedToken> {
    if (cached && this.#now() < cached.refreshAt) return cached;
    const url = `${this.baseUrl}/oauth/token`;
    for (let attempt = 0; ; attempt++) {
      const assertion = await createClientAssertion(this.identity, { audience: url, now: this.#now() });
      const proof = bound ? await this.#proof({ method: 'POST', url }) : undefined;
      const response = await this.#send(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(proof ? { dpop: proof } : {}) },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
        }).toString(),
      });
      const body = (await response.json().catch(() => ({}))) as Partial<OAuthErrorBody> & {
        access_token?: string;
        expires_in?: number;
      };
      // RFC 9449 §8: the broker wants a nonce; the answer carried one, so try once more with it.
      if (body.error === 'use_dpop_nonce' && attempt === 0 && this.#nonce) continue;
      if (!response.ok || !body.access_token) {
        throw new BrokerError(
          response.status,
          body.error ?? 'invalid_client',
          body.error_description ?? 'token request failed',
          body,
        );
      }
      return {
        value: body.access_token,
        refreshAt: this.#now() + Math.max(0, (body.expires_in ?? 60) - 30) * 1000,
      };
    }
  }

  /** Sends a request and remembers the DPoP nonce the broker hands out with any answer. */
  async #send(url: string, init: RequestInit): Promise<Response> {
    const response = await this.#fetch(url, init);
    const nonce = response.headers.get('dpop-nonce');
    if (nonce) this.#nonce = nonce;
    return response;
  }

  /** The latest DPoP nonce the broker issued, for proofs made outside this client. */
  get dpopNonce(): string | undefined {
    return this.#nonce;
  }

  async #proof(target: { method: string; url: string; accessToken?: string }): Promise<string> {
    return createDpopProof(await this.#proofKey(), {
      ...target,
      ...(this.#nonce ? { nonce: this.#nonce } : {}),
      now: this.#now(),
    });
  }

  /** This client's DPoP key: generated once, non-extractable, never stored. */
  async #proofKey(): Promise<SessionKey> {
    // With a tether login, the token is bound to the identity's own key.
    this.#key ??= this.identity.login ? sessionKeyFromJwk(this.identity.key as JWK) : generateSessionKey();
    return this.#key;
  }

  /** The `Authorization` (and `DPoP`) headers for one call to the broker API. */
  async #authHeaders(method: string, path: string): Promise<Record<string, string>> {
    const token = await this.accessToken();
    if (!this.#dpop) return { authorization: `Bearer ${token}` };
    const proof = await this.#proof({ method, url: `${this.baseUrl}${path}`, accessToken: token });
    return { authorization: `DPoP ${token}`, dpop: proof };
  }

  /**
   * Posts a form to an OAuth endpoint (no broker-API token attached) and answers the parsed
   * JSON, or throws a {@link BrokerError} carrying the RFC 6749 `error`.
   */
  async postForm<T = unknown>(
    path: string,
    form: Record<string, string>,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const response = await this.#send(`${this.baseUrl}${path}`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
    const body = (await response.json().catch(() => ({}))) as Partial<OAuthErrorBody> &
      Record<string, unknown>;
    if (!response.ok) {
      throw new BrokerError(
        response.status,
        body.error ?? `http_${response.status}`,
        body.error_description ?? response.statusText,
        body,
      );
    }
    return body as T;
  }

  /** The fetch this client uses (so sessions built on it talk to the same place). */
  get fetchImpl(): typeof fetch {
    return this.#fetch;
  }

  now(): number {
    return this.#now();
  }

  /** Calls an API route; answers the parsed JSON or throws a {@link BrokerError}. */
  async call<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    options: { headers?: Record<string, string> } = {},
  ): Promise<T> {
    // A call that carries its own DPoP proof (activation proves the session key) has no room
    // for a second one, so it authenticates with an unbound token.
    const ownProof =
      options.headers !== undefined && Object.keys(options.headers).some((h) => h.toLowerCase() === 'dpop');
    for (let attempt = 0; ; attempt++) {
      const auth = ownProof
        ? { authorization: `Bearer ${await this.bearerToken()}` }
        : await this.#authHeaders(method, path);
      const response = await this.#send(`${this.baseUrl}${path}`, {
        method,
        headers: {
          ...options.headers,
          ...auth,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      let parsed: unknown;
      try {
        parsed = text === '' ? undefined : JSON.parse(text);
      } catch {
        parsed = text;
      }
      if (!response.ok) {
        const problem = parsed as Partial<Problem> | undefined;
        // A nonce challenge to this client's own proof: answer it once with the nonce it carried.
        if (problem?.code === 'use_dpop_nonce' && !ownProof && attempt === 0 && this.#nonce) continue;
        throw new BrokerError(
          response.status,
          problem?.code ?? `http_${response.status}`,
          problem?.detail ?? response.statusText,
          parsed,
        );
      }
      return parsed as T;
    }
  }

  /**
   * Opens a broker-API stream (Server-Sent Events) and answers the response, its body unread:
   * the caller reads the events and cancels the body when done. An error answer throws a
   * {@link BrokerError} like {@link call}.
   */
  async stream(path: string, signal?: AbortSignal): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const response = await this.#send(`${this.baseUrl}${path}`, {
        method: 'GET',
        headers: { ...(await this.#authHeaders('GET', path)), accept: 'text/event-stream' },
        ...(signal ? { signal } : {}),
      });
      if (response.ok) return response;
      const problem = (await response.json().catch(() => undefined)) as Partial<Problem> | undefined;
      if (problem?.code === 'use_dpop_nonce' && attempt === 0 && this.#nonce) continue;
      throw new BrokerError(
        response.status,
        problem?.code ?? `http_${response.status}`,
        problem?.detail ?? response.statusText,
        problem,
      );
    }
  }
}
