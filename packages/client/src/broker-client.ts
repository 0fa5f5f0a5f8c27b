import type { IdentityFile, OAuthErrorBody, Problem } from '@tether/protocol';
import { createClientAssertion } from './client-assertion.js';

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
  #token: { value: string; refreshAt: number } | undefined;

  constructor(options: BrokerClientOptions) {
    this.identity = options.identity;
    this.baseUrl = (options.baseUrl ?? options.identity.broker).replace(/\/+$/, '');
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now ?? Date.now;
  }

  /** A broker-API access token, fetched at `/oauth/token` when the cached one is near expiry. */
  async accessToken(): Promise<string> {
    if (this.#token && this.#now() < this.#token.refreshAt) return this.#token.value;
    const assertion = await createClientAssertion(this.identity, {
      audience: `${this.baseUrl}/oauth/token`,
      now: this.#now(),
    });
    const response = await this.#fetch(`${this.baseUrl}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
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
    if (!response.ok || !body.access_token) {
      throw new BrokerError(
        response.status,
        body.error ?? 'invalid_client',
        body.error_description ?? 'token request failed',
        body,
      );
    }
    this.#token = {
      value: body.access_token,
      refreshAt: this.#now() + Math.max(0, (body.expires_in ?? 60) - 30) * 1000,
    };
    return body.access_token;
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
    const response = await this.#fetch(`${this.baseUrl}${path}`, {
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
    const token = await this.accessToken();
    const response = await this.#fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        ...options.headers,
        authorization: `Bearer ${token}`,
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
