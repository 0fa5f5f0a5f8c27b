import type { SessionReceipt } from '@tether-broker/protocol';
import type {
  ActivationView,
  CollectedCredentialsView,
  CredentialView,
  RecordingSummary,
  RequestView,
  TokenResponse,
} from '@tether-broker/protocol/api';
import { decodeJwt } from 'jose/jwt/decode';
import { type BrokerClient, BrokerError } from './broker-client.js';
import { createDpopProof } from './dpop-proof.js';
import { generateSessionKey, type SessionKey } from './session-key.js';

/** What activation and refresh answer. */
export interface SessionTokenSet {
  accessToken: string;
  refreshToken: string;
  /** Epoch ms when the access token expires. */
  expiresAt: number;
}

export interface SessionInfo {
  id: string;
  /** Epoch ms. Moves later when an extension of the session is approved (learnt at the next refresh). */
  hardExpiresAt: number;
  audiences: string[];
  /**
   * Downstream credentials (connectors) handed over with the activation: their values exist
   * nowhere else; the broker never answers them again. Empty if the privilege names none.
   */
  credentials: CredentialView[];
  /** Connectors still minting when the activation answered: collect them with {@link BoundSession.collectCredentials}. */
  credentialsPending: string[];
  /**
   * Set when the privilege requires recording: the session must stream its recording (see
   * {@link SessionRecorder}) or the broker ends it once `lapse_seconds` pass without a chunk.
   */
  recording?: RecordingPlan | undefined;
}

/** How a recorded session streams its recording, as the activation answered it. */
export type RecordingPlan = NonNullable<ActivationView['recording']>;

/** The broker's latest DPoP nonce, as proof options. */
function brokerNonce(client: BrokerClient): { nonce?: string } {
  return client.dpopNonce ? { nonce: client.dpopNonce } : {};
}

/**
 * Runs a broker call whose DPoP proof `attempt` makes itself; if the broker answers
 * `use_dpop_nonce` (RFC 9449 §8), makes a new proof with the nonce it sent and tries once more.
 */
async function withBrokerNonce<T>(client: BrokerClient, attempt: () => Promise<T>): Promise<T> {
  try {
    return await attempt();
  } catch (err) {
    if (err instanceof BrokerError && err.code === 'use_dpop_nonce' && client.dpopNonce) return attempt();
    throw err;
  }
}

/**
 * The session's hard expiry as a new access token states it (`session_exp`, epoch seconds):
 * an approved extension moves it. Read, not verified: it only tells this holder when to stop.
 */
function statedSessionExpiry(accessToken: string): number | undefined {
  try {
    const exp = decodeJwt(accessToken).session_exp;
    return typeof exp === 'number' && Number.isSafeInteger(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 30_000;

/**
 * A live session held by this process: its DPoP key never leaves it, every call it makes is
 * signed with a fresh proof bound to the access token, and tokens are refreshed before they
 * expire.
 *
 * @example
 * ```ts
 * const session = await BoundSession.activate(client, requestId);
 * try {
 *   const res = await session.fetch('https://fw.example/rules', { method: 'POST', body });
 * } finally {
 *   await session.end();
 * }
 * ```
 */
export class BoundSession {
  readonly info: SessionInfo;
  readonly key: SessionKey;
  #client: BrokerClient;
  #tokens: SessionTokenSet;
  #nonces = new Map<string, string>();
  #resourceFetch: typeof fetch;

  constructor(
    client: BrokerClient,
    key: SessionKey,
    info: SessionInfo,
    tokens: SessionTokenSet,
    options: { resourceFetch?: typeof fetch } = {},
  ) {
    this.#client = client;
    this.key = key;
    this.info = info;
    this.#tokens = tokens;
    this.#resourceFetch = options.resourceFetch ?? fetch;
  }

  /**
   * Collects the session's downstream credentials minted since the activation answered (each
   * value is answered once); adds them to `info.credentials`.
   */
  async collectCredentials(): Promise<CollectedCredentialsView> {
    const client = this.#client;
    const path = `/v1/sessions/${this.info.id}/credentials`;
    // Signed by the session key: the principal's API token alone does not collect them.
    const collected = await withBrokerNonce(client, async () => {
      const proof = await createDpopProof(this.key, {
        method: 'POST',
        url: `${client.baseUrl}${path}`,
        ...brokerNonce(client),
        now: client.now(),
      });
      return client.call<CollectedCredentialsView>('POST', path, {}, { headers: { dpop: proof } });
    });
    this.info.credentials.push(...collected.credentials);
    this.info.credentialsPending = collected.pending;
    return collected;
  }

  /**
   * Sends one chunk of the session's recording: `proof` is a JWS by the session key over the
   * chunk's position and hash (see {@link SessionRecorder}, which makes it).
   */
  async sendRecordingChunk(body: { proof: string; data: string }): Promise<RecordingSummary> {
    const upload = this.info.recording?.upload;
    if (upload === undefined)
      throw new BrokerError(
        400,
        'invalid_request',
        `session ${this.info.id} does not run recorded`,
        undefined,
      );
    return this.#client.call<RecordingSummary>('POST', upload, body);
  }

  /** Activates an approved request into a session bound to `key` (a fresh non-extractable one by default). */
  static async activate(
    client: BrokerClient,
    requestId: string,
    key?: SessionKey,
    options: { resourceFetch?: typeof fetch } = {},
  ): Promise<BoundSession> {
    const sessionKey = key ?? (await generateSessionKey());
    const path = `/v1/requests/${requestId}/activate`;
    const answer = await withBrokerNonce(client, async () => {
      const proof = await createDpopProof(sessionKey, {
        method: 'POST',
        url: `${client.baseUrl}${path}`,
        ...brokerNonce(client),
        now: client.now(),
      });
      return client.call<ActivationView>('POST', path, {}, { headers: { dpop: proof } });
    });
    return new BoundSession(
      client,
      sessionKey,
      {
        id: answer.session.id,
        hardExpiresAt: Date.parse(answer.session.hard_expires_at),
        audiences: answer.session.audiences,
        credentials: answer.credentials ?? [],
        credentialsPending: answer.credentials_pending ?? [],
        ...(answer.recording === undefined ? {} : { recording: answer.recording }),
      },
      {
        accessToken: answer.access_token,
        refreshToken: answer.refresh_token,
        expiresAt: client.now() + answer.expires_in * 1000,
      },
      options,
    );
  }

  /** The client's clock (epoch ms), which its proofs are dated by. */
  now(): number {
    return this.#client.now();
  }

  get tokens(): Readonly<SessionTokenSet> {
    return this.#tokens;
  }

  /** Trades the refresh token for new tokens (DPoP-signed by the session key). */
  async refresh(): Promise<void> {
    const client = this.#client;
    const answer = await withBrokerNonce(client, async () => {
      const proof = await createDpopProof(this.key, {
        method: 'POST',
        url: `${client.baseUrl}/oauth/token`,
        ...brokerNonce(client),
        now: client.now(),
      });
      return client.postForm<TokenResponse>(
        '/oauth/token',
        { grant_type: 'refresh_token', refresh_token: this.#tokens.refreshToken },
        { dpop: proof },
      );
    });
    // The broker rotates refresh tokens: the one just sent is spent, so an answer without its
    // successor would strand the session.
    if (answer.refresh_token === undefined)
      throw new BrokerError(
        502,
        'invalid_token_response',
        'the broker answered a refresh without a new refresh token',
        undefined,
      );
    this.#tokens = {
      accessToken: answer.access_token,
      refreshToken: answer.refresh_token,
      expiresAt: this.#client.now() + answer.expires_in * 1000,
    };
    const stated = statedSessionExpiry(answer.access_token);
    if (stated !== undefined && stated > this.info.hardExpiresAt) this.info.hardExpiresAt = stated;
  }

  /** The current access token, refreshed first when it is about to expire. */
  async accessToken(): Promise<string> {
    if (this.#client.now() >= this.#tokens.expiresAt - REFRESH_MARGIN_MS) await this.refresh();
    return this.#tokens.accessToken;
  }

  /**
   * A DPoP-signed request with the session's access token. A `use_dpop_nonce` challenge (RFC
   * 9449 §9: a resource server or gateway that requires its own nonce) is answered once with the
   * nonce the server sent; the nonce is kept per origin and refreshed from every `DPoP-Nonce`
   * header, so later calls carry it from the start. The challenged request was refused before
   * it reached the service, so sending it again does not repeat it. A body that can be read
   * only once (a stream) cannot be sent again: the challenge is then answered as received.
   */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const origin = new URL(url).origin;
    const attempt = async () => {
      const token = await this.accessToken();
      const nonce = this.#nonces.get(origin);
      const proof = await createDpopProof(this.key, {
        method: init.method ?? 'GET',
        url,
        accessToken: token,
        ...(nonce ? { nonce } : {}),
        now: this.#client.now(),
      });
      const headers = new Headers(init.headers);
      headers.set('authorization', `DPoP ${token}`);
      headers.set('dpop', proof);
      const response = await this.#resourceFetch(url, { ...init, headers });
      const fresh = response.headers.get('dpop-nonce');
      if (fresh) this.#nonces.set(origin, fresh);
      return response;
    };
    const first = await attempt();
    const challenge = first.headers.get('www-authenticate') ?? '';
    if (
      (first.status === 401 || first.status === 400) &&
      /use_dpop_nonce/.test(challenge) &&
      first.headers.get('dpop-nonce') &&
      !(init.body instanceof ReadableStream)
    ) {
      // Frees the connection the refused answer holds before the retry.
      await first.body?.cancel();
      return attempt();
    }
    return first;
  }

  /**
   * The session's receipt: when it ended and which enforcement points have applied the end
   * (`enforced` once every live one has).
   */
  async receipt(): Promise<SessionReceipt> {
    return this.#client.call<SessionReceipt>('GET', `/v1/sessions/${this.info.id}/receipt`);
  }

  /** The broker client this session talks through (a sub-session minted from it uses the same). */
  get brokerClient(): BrokerClient {
    return this.#client;
  }

  /** The fetch resource calls go through. */
  get resourceFetch(): typeof fetch {
    return this.#resourceFetch;
  }

  /** Ends the session at the broker. Ending an already-ended session is not an error here. */
  async end(reason: 'completed' | 'revoked' = 'completed'): Promise<void> {
    try {
      await this.#client.call('POST', `/v1/sessions/${this.info.id}/end`, { reason });
    } catch (err) {
      if (err instanceof BrokerError && err.code === 'session_not_live') return;
      throw err;
    }
  }
}

export interface TaskRequest {
  privilege: string;
  justification: string;
  ticket?: string;
  /** Seconds. */
  duration?: number;
}

/**
 * For single-run jobs: asks for the privilege, activates the session (the request must be
 * approved at once, e.g. by an auto-approve policy), runs `task`, and ends the session
 * whatever happens — success, failure or exception.
 */
export async function withSession<T>(
  client: BrokerClient,
  request: TaskRequest,
  task: (session: BoundSession) => Promise<T>,
  options: { resourceFetch?: typeof fetch } = {},
): Promise<T> {
  const created = await client.call<RequestView>('POST', '/v1/requests', request);
  if (created.state !== 'approved') {
    throw new BrokerError(
      409,
      'request_not_approved',
      `request ${created.id} is ${created.state}; withSession needs an approved request`,
      created,
    );
  }
  const session = await BoundSession.activate(client, created.id, undefined, options);
  let failed = false;
  try {
    return await task(session);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    // The session ends whatever the task did; if the task failed, its error is the one to see.
    await session.end('completed').catch((endError: unknown) => {
      if (!failed) throw endError;
    });
  }
}
