import { randomUUID } from 'node:crypto';
import type { TokenResponse } from '@tether-broker/protocol/api';
import { decodeJwt } from 'jose/jwt/decode';
import { SignJWT } from 'jose/jwt/sign';
import { BrokerError } from './broker-client.js';
import { createDpopProof } from './dpop-proof.js';
import { BoundSession } from './session.js';
import { generateSessionKey, type SessionKey } from './session-key.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
/** `typ` of the actor token: the broker refuses any other. */
export const ACTOR_TOKEN_TYP = 'tether-actor+jwt';

/** What a sub-session is for: who acts, what it may do, for how long, how many calls. */
export interface SubSessionAsk {
  /** The actor's name, as the audit trail and the tokens' `act.sub` will show it. */
  actor: string;
  actions: string[];
  resources: string[];
  /** Seconds; at most what remains of the parent (default: all of it). */
  ttl?: number;
  /** One of the parent's audiences (default: all of them). */
  audience?: string;
  /** Seconds; at most the parent's idle timeout. */
  idleTimeout?: number;
  /** Allowed calls per action; the sub-session ends once the PEPs report them made. */
  callBudget?: Record<string, number>;
  /** The sub-session's key (default: a fresh non-extractable one). */
  key?: SessionKey;
}

/**
 * An actor token for `key`: the proof, signed by the key the sub-session will be bound to,
 * that the actor holds it. Single-use and short-lived.
 */
export async function createActorToken(
  key: SessionKey,
  options: { brokerUrl: string; actor: string; now: number; lifetimeSeconds?: number },
): Promise<string> {
  const iat = Math.floor(options.now / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: key.alg, typ: ACTOR_TOKEN_TYP, jwk: key.publicJwk })
    .setSubject(options.actor)
    .setAudience(`${options.brokerUrl.replace(/\/+$/, '')}/oauth/token`)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (options.lifetimeSeconds ?? 60))
    .setJti(randomUUID())
    .sign(key.privateKey);
}

/**
 * Mints a sub-session of `parent` (RFC 8693 token exchange with an actor token): the parent's
 * access token as the subject, proved by the parent's key; the actor token by the
 * sub-session's own key. The broker refuses anything wider or longer than the parent.
 */
export async function delegateSubSession(parent: BoundSession, ask: SubSessionAsk): Promise<BoundSession> {
  const client = parent.brokerClient;
  const key = ask.key ?? (await generateSessionKey());
  const form: Record<string, string> = {
    grant_type: TOKEN_EXCHANGE,
    subject_token_type: ACCESS_TOKEN_TYPE,
    actor_token_type: JWT_TOKEN_TYPE,
    authorization_details: JSON.stringify([
      { type: 'tether_privilege', actions: ask.actions, resources: ask.resources },
    ]),
    ...(ask.ttl === undefined ? {} : { duration: String(ask.ttl) }),
    ...(ask.audience === undefined ? {} : { audience: ask.audience }),
    ...(ask.idleTimeout === undefined ? {} : { idle_timeout: String(ask.idleTimeout) }),
    ...(ask.callBudget === undefined ? {} : { call_budget: JSON.stringify(ask.callBudget) }),
  };
  const attempt = async () => {
    const subjectToken = await parent.accessToken();
    const proof = await createDpopProof(parent.key, {
      method: 'POST',
      url: `${client.baseUrl}/oauth/token`,
      accessToken: subjectToken,
      ...(client.dpopNonce ? { nonce: client.dpopNonce } : {}),
      now: client.now(),
    });
    const actorToken = await createActorToken(key, {
      brokerUrl: client.baseUrl,
      actor: ask.actor,
      now: client.now(),
    });
    return client.postForm<TokenResponse>(
      '/oauth/token',
      { ...form, subject_token: subjectToken, actor_token: actorToken },
      { dpop: proof },
    );
  };
  let answer: TokenResponse;
  try {
    answer = await attempt();
  } catch (err) {
    if (!(err instanceof BrokerError && err.code === 'use_dpop_nonce' && client.dpopNonce)) throw err;
    answer = await attempt();
  }
  if (answer.session_id === undefined || answer.refresh_token === undefined)
    throw new BrokerError(
      502,
      'invalid_token_response',
      'the broker answered a delegation without a session',
      undefined,
    );
  const claims = decodeJwt(answer.access_token);
  const audiences = typeof claims.aud === 'string' ? [claims.aud] : (claims.aud ?? []);
  return new BoundSession(
    client,
    key,
    {
      id: answer.session_id,
      hardExpiresAt:
        typeof claims.session_exp === 'number' ? claims.session_exp * 1000 : parent.info.hardExpiresAt,
      audiences,
      credentials: [],
      credentialsPending: [],
    },
    {
      accessToken: answer.access_token,
      refreshToken: answer.refresh_token,
      expiresAt: client.now() + answer.expires_in * 1000,
    },
    { resourceFetch: parent.resourceFetch },
  );
}

/**
 * Runs `fn` with a sub-session of `parent` for one run of an agent or tool, and ends the
 * sub-session when `fn` settles, whatever it did (the run says it is done). The sub-session
 * also ends with its parent, and on its own limits (ttl, idle, call budget).
 *
 * @example
 * ```ts
 * await withSubSession(session, { actor: 'agent:triage-17', actions: ['logs:read'], resources: ['svc/api'], ttl: 300 },
 *   (agent) => runAgent({ fetch: (url, init) => agent.fetch(url, init) }));
 * ```
 */
export async function withSubSession<T>(
  parent: BoundSession,
  ask: SubSessionAsk,
  fn: (child: BoundSession) => Promise<T>,
): Promise<T> {
  const child = await delegateSubSession(parent, ask);
  let failed = false;
  try {
    return await fn(child);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    await child.end('completed').catch((endError: unknown) => {
      if (!failed) throw endError;
    });
  }
}
