import { randomUUID } from 'node:crypto';
import { importJWK, type JWK, SignJWT } from 'jose';

/** The enforcement point's own principal (role `pep`): the identity file's `principal` and `key`. */
export interface PepIdentity {
  /** The principal id (`prn_…`) or name the broker knows the PEP by. */
  principal: string;
  /** Its private JWK (Ed25519 or P-256). Only signatures leave the process. */
  key: Record<string, unknown>;
}

/** A broker answer that was not a success; `code` is the problem's or OAuth error's code. */
export class BrokerCallFailed extends Error {
  override readonly name = 'BrokerCallFailed';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface BrokerLinkOptions {
  /** The broker's base URL, where the PEP reaches it. */
  broker: string;
  /** The broker's issuer identifier (its public URL). Default: `broker`. */
  issuer?: string;
  identity: PepIdentity;
  fetch?: typeof fetch;
  /** Epoch milliseconds. */
  now: () => number;
  /** A call that has not answered within this time fails. Default 5 s. */
  timeoutMs?: number;
}

/**
 * The PEP's authenticated channel to the broker, for what is not per request: following the
 * revocation log, acknowledging it, and reporting decisions. It obtains a broker-API token with
 * `client_credentials` and a `private_key_jwt` assertion (RFC 7523), keeps it until 30 s before
 * it expires, and gets a new one once when the broker answers 401.
 */
export class BrokerLink {
  readonly broker: string;
  readonly issuer: string;
  readonly #identity: PepIdentity;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  #token: { value: string; refreshAt: number } | undefined;
  #pending: Promise<string> | undefined;

  constructor(options: BrokerLinkOptions) {
    this.broker = options.broker.replace(/\/+$/, '');
    this.issuer = (options.issuer ?? options.broker).replace(/\/+$/, '');
    this.#identity = options.identity;
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now;
    this.#timeoutMs = options.timeoutMs ?? 5000;
  }

  /** A current broker-API access token (Bearer). Concurrent callers share one token request. */
  async token(): Promise<string> {
    const cached = this.#token;
    if (cached !== undefined && this.#now() < cached.refreshAt) return cached.value;
    this.#pending ??= this.#requestToken().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  /** Drops the cached token (the broker refused it). */
  forgetToken(): void {
    this.#token = undefined;
  }

  /** POSTs JSON to `path` and returns the parsed JSON answer; retries once with a new token on 401. */
  async postJson(path: string, body: unknown): Promise<unknown> {
    const response = await this.#call(path, 'POST', {
      'content-type': 'application/json',
      body: JSON.stringify(body),
    });
    return response.json().catch(() => undefined);
  }

  /** POSTs a form to `path` (RFC 7662 introspection) and returns the parsed JSON answer. */
  async postForm(path: string, form: Record<string, string>): Promise<unknown> {
    const response = await this.#call(path, 'POST', {
      'content-type': 'application/x-www-form-urlencoded',
      body: new URLSearchParams(form).toString(),
    });
    return response.json().catch(() => undefined);
  }

  /** GETs `path` and returns the answer's text (a status list token). */
  async getText(path: string, accept: string): Promise<string> {
    const response = await this.#call(path, 'GET', { accept });
    return response.text();
  }

  async #call(
    path: string,
    method: 'GET' | 'POST',
    options: { 'content-type'?: string; accept?: string; body?: string },
  ): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { authorization: `Bearer ${await this.token()}` };
      if (options['content-type']) headers['content-type'] = options['content-type'];
      if (options.accept) headers.accept = options.accept;
      const response = await this.#fetch(`${this.broker}${path}`, {
        method,
        headers,
        ...(options.body === undefined ? {} : { body: options.body }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      if (response.status === 401 && attempt === 0) {
        await response.body?.cancel();
        this.forgetToken();
        continue;
      }
      if (!response.ok) {
        const answer = (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined;
        throw failure(response.status, answer);
      }
      return response;
    }
  }

  async #requestToken(): Promise<string> {
    const url = `${this.broker}/oauth/token`;
    const response = await this.#fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        // The broker accepts its token endpoint under its public URL as the audience.
        client_assertion: await this.#assertion(`${this.issuer}/oauth/token`),
      }).toString(),
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    const answer = (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined;
    if (!response.ok || typeof answer?.access_token !== 'string') throw failure(response.status, answer);
    const lifetime = typeof answer.expires_in === 'number' ? answer.expires_in : 60;
    this.#token = {
      value: answer.access_token,
      refreshAt: this.#now() + Math.max(0, lifetime - 30) * 1000,
    };
    return answer.access_token;
  }

  /** RFC 7523 client assertion: `iss` = `sub` = the principal, the token endpoint as `aud`, one-time `jti`. */
  async #assertion(audience: string): Promise<string> {
    const jwk = this.#identity.key as JWK;
    const alg = jwk.kty === 'OKP' ? 'EdDSA' : 'ES256';
    const key = await importJWK(jwk, alg);
    const iat = Math.floor(this.#now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg, typ: 'JWT', ...(jwk.kid ? { kid: jwk.kid } : {}) })
      .setIssuer(this.#identity.principal)
      .setSubject(this.#identity.principal)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 60)
      .setJti(randomUUID())
      .sign(key);
  }
}

function failure(status: number, answer: Record<string, unknown> | undefined): BrokerCallFailed {
  const code = String(answer?.code ?? answer?.error ?? 'broker_error');
  const detail = String(answer?.detail ?? answer?.error_description ?? `the broker answered ${status}`);
  return new BrokerCallFailed(status, code, detail);
}
