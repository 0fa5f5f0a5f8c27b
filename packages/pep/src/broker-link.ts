import { type CryptoKey, importJWK, type JWK, SignJWT } from 'jose';
import { randomBase64url, sha256Base64url } from './web.js';

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

/** The headers that authenticate one call to the broker API. */
export interface BrokerAuthHeaders {
  authorization: string;
  dpop: string;
}

/**
 * The PEP's authenticated channel to the broker, for what is not per request: following the
 * revocation log, acknowledging it, and reporting decisions. It obtains a broker-API token with
 * `client_credentials` and a `private_key_jwt` assertion (RFC 7523), DPoP-bound (RFC 9449) to
 * the PEP's own registered key, and signs a fresh DPoP proof by that key for every call: a
 * token copied off the wire or out of a log is refused without it, and the broker can tell a
 * report really comes from the PEP (only a report signed by the PEP's key counts as session
 * activity). It keeps the token until 30 s before it expires and gets a new one once when the
 * broker answers 401; it answers a `use_dpop_nonce` challenge (RFC 9449 §8) once with the nonce
 * the broker sent, and uses the newest nonce it has seen in every later proof.
 *
 * `instance` names this process to the broker (random per start, sent with acks), so that
 * replicas sharing one PEP identity are told apart in receipts.
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
  #signingKey: Promise<{ key: CryptoKey | Uint8Array; alg: string; publicJwk: JWK }> | undefined;
  #nonce: string | undefined;
  /** This process's instance id: random per start, never reused. */
  readonly instance = randomBase64url(18);

  constructor(options: BrokerLinkOptions) {
    this.broker = options.broker.replace(/\/+$/, '');
    this.issuer = (options.issuer ?? options.broker).replace(/\/+$/, '');
    this.#identity = options.identity;
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now;
    this.#timeoutMs = options.timeoutMs ?? 5000;
  }

  /** A current broker-API access token (DPoP-bound). Concurrent callers share one token request. */
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

  /**
   * `Authorization: DPoP <token>` and a fresh proof for one call to `path` (no query) on the
   * broker, for callers that send the request themselves (the event stream).
   */
  async authHeaders(method: string, path: string): Promise<BrokerAuthHeaders> {
    const token = await this.token();
    return { authorization: `DPoP ${token}`, dpop: await this.#proof(method, path, token) };
  }

  /** Remembers the DPoP nonce a broker answer carried (`DPoP-Nonce`), for the next proofs. */
  observe(nonce: string | null | undefined): void {
    if (typeof nonce === 'string' && nonce !== '') this.#nonce = nonce;
  }

  /** POSTs JSON to `path` and returns the parsed JSON answer; retries once with a new token on 401. */
  async postJson(path: string, body: unknown, options: { timeoutMs?: number } = {}): Promise<unknown> {
    const response = await this.#call(path, 'POST', {
      'content-type': 'application/json',
      body: JSON.stringify(body),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
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
    options: { 'content-type'?: string; accept?: string; body?: string; timeoutMs?: number },
  ): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const nonceBefore = this.#nonce;
      const headers: Record<string, string> = { ...(await this.authHeaders(method, path.split('?')[0]!)) };
      if (options['content-type']) headers['content-type'] = options['content-type'];
      if (options.accept) headers.accept = options.accept;
      const response = await this.#fetch(`${this.broker}${path}`, {
        method,
        headers,
        ...(options.body === undefined ? {} : { body: options.body }),
        signal: AbortSignal.timeout(options.timeoutMs ?? this.#timeoutMs),
      });
      this.observe(response.headers.get('dpop-nonce'));
      if (response.ok) return response;
      const answer = (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined;
      if (attempt === 0) {
        // A nonce challenge answered with a nonce we did not use yet: once more, with it.
        if (isNonceChallenge(answer) && this.#nonce !== nonceBefore) continue;
        if (response.status === 401) {
          this.forgetToken();
          continue;
        }
      }
      throw failure(response.status, answer);
    }
  }

  /** An RFC 9449 proof by the PEP's key for `method` on the broker's `path`, bound to `token`. */
  async #proof(method: string, path: string, token?: string): Promise<string> {
    const { key, alg, publicJwk } = await this.#key();
    return new SignJWT({
      htm: method.toUpperCase(),
      // The broker checks `htu` against its public URL (the issuer), not where it is reached.
      htu: `${this.issuer}${path}`,
      ...(token === undefined ? {} : { ath: await sha256Base64url(token) }),
      ...(this.#nonce === undefined ? {} : { nonce: this.#nonce }),
    })
      .setProtectedHeader({ alg, typ: 'dpop+jwt', jwk: publicJwk })
      .setJti(globalThis.crypto.randomUUID())
      .setIssuedAt(Math.floor(this.#now() / 1000))
      .sign(key);
  }

  /** The identity's key, imported once; its public half is what proofs carry. */
  #key(): Promise<{ key: CryptoKey | Uint8Array; alg: string; publicJwk: JWK }> {
    this.#signingKey ??= (async () => {
      const jwk = this.#identity.key as JWK;
      const alg = algOf(jwk);
      // Only the public members travel in a proof's header (its thumbprint is the key's `kid`).
      const publicJwk: JWK =
        jwk.kty === 'OKP'
          ? { kty: 'OKP', crv: jwk.crv, x: jwk.x }
          : { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
      return { key: await importJWK(jwk, alg), alg, publicJwk };
    })();
    return this.#signingKey;
  }

  async #requestToken(): Promise<string> {
    const url = `${this.broker}/oauth/token`;
    let response: Response;
    let answer: Record<string, unknown> | undefined;
    for (let attempt = 0; ; attempt++) {
      const nonceBefore = this.#nonce;
      response = await this.#fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          // The token is bound to the PEP's own key: every call must come with a proof by it.
          dpop: await this.#proof('POST', '/oauth/token'),
        },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          // The broker accepts its token endpoint under its public URL as the audience.
          client_assertion: await this.#assertion(`${this.issuer}/oauth/token`),
        }).toString(),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      this.observe(response.headers.get('dpop-nonce'));
      answer = (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined;
      if (attempt === 0 && isNonceChallenge(answer) && this.#nonce !== nonceBefore) continue;
      break;
    }
    if (!response.ok || typeof answer?.access_token !== 'string') throw failure(response.status, answer);
    if (String(answer.token_type).toLowerCase() !== 'dpop')
      throw new BrokerCallFailed(
        response.status,
        'invalid_token',
        'the broker did not bind the token to the PEP key',
      );
    const lifetime = typeof answer.expires_in === 'number' ? answer.expires_in : 60;
    this.#token = {
      value: answer.access_token,
      refreshAt: this.#now() + Math.max(0, lifetime - 30) * 1000,
    };
    return answer.access_token;
  }

  /** RFC 7523 client assertion: `iss` = `sub` = the principal, the token endpoint as `aud`, one-time `jti`. */
  async #assertion(audience: string): Promise<string> {
    const { key, alg } = await this.#key();
    const jwk = this.#identity.key as JWK;
    const iat = Math.floor(this.#now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg, typ: 'JWT', ...(jwk.kid ? { kid: jwk.kid } : {}) })
      .setIssuer(this.#identity.principal)
      .setSubject(this.#identity.principal)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 60)
      .setJti(globalThis.crypto.randomUUID())
      .sign(key);
  }
}

function failure(status: number, answer: Record<string, unknown> | undefined): BrokerCallFailed {
  const code = String(answer?.code ?? answer?.error ?? 'broker_error');
  const detail = String(answer?.detail ?? answer?.error_description ?? `the broker answered ${status}`);
  return new BrokerCallFailed(status, code, detail);
}

/** The JWS algorithm for a PEP key: Ed25519 (EdDSA) or P-256 (ES256), as the broker accepts. */
function algOf(jwk: JWK): string {
  return jwk.kty === 'OKP' ? 'EdDSA' : 'ES256';
}

/** Whether a broker answer (problem or OAuth error) asks for a DPoP nonce. */
function isNonceChallenge(answer: Record<string, unknown> | undefined): boolean {
  return answer?.code === 'use_dpop_nonce' || answer?.error === 'use_dpop_nonce';
}
