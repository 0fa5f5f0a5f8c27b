import { DpopError } from '@tether-broker/pep';
import { isTetherError } from '@tether-broker/protocol';
import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, type JWTPayload, jwtVerify } from 'jose';
import { OAuthError } from '../auth/oauth-error.js';
import { verifyBrokerProof } from '../core/broker-dpop.js';
import type { BrokerContext } from '../core/context.js';
import { type DelegationAsk, readActorName } from '../domain/delegation.js';
import { rememberOnce } from '../store/single-use.js';
import type { OwnAccessTokenClaims } from '../tokens/access-token.js';

/*
 * What a delegation request (RFC 8693 token exchange with an actor token) presents, read and
 * checked before anything is looked up in a transaction: the form, the parent's proof, the
 * actor token. sessions/delegate-session.ts runs the whole exchange.
 */

/** RFC 8693 §3 token types a delegation takes: the parent's access token, the actor's JWT. */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
/** `typ` of an actor token: a JWT the actor signs with the key its sub-session will be bound to. */
export const ACTOR_TOKEN_JWT_TYPE = 'tether-actor+jwt';
const ACTOR_TOKEN_ALGS = ['ES256', 'ES384', 'EdDSA'];

/** The token-endpoint parameters a delegation reads. */
export interface DelegationForm {
  subject_token?: string | undefined;
  subject_token_type?: string | undefined;
  actor_token?: string | undefined;
  actor_token_type?: string | undefined;
  requested_token_type?: string | undefined;
  authorization_details?: string | undefined;
  audience?: string | undefined;
  duration?: number | undefined;
  idle_timeout?: number | undefined;
  call_budget?: string | undefined;
}

export function readSubjectToken(form: DelegationForm): string {
  if (!form.subject_token) throw new OAuthError('invalid_request', 'subject_token is required');
  if (form.subject_token_type !== ACCESS_TOKEN_TYPE)
    throw new OAuthError(
      'invalid_request',
      `with an actor_token, subject_token is the parent session's access token (subject_token_type ${ACCESS_TOKEN_TYPE})`,
    );
  if (form.actor_token_type !== JWT_TOKEN_TYPE)
    throw new OAuthError('invalid_request', `actor_token_type must be ${JWT_TOKEN_TYPE}`);
  if (form.requested_token_type !== undefined && form.requested_token_type !== ACCESS_TOKEN_TYPE)
    throw new OAuthError('invalid_request', `requested_token_type must be ${ACCESS_TOKEN_TYPE}`);
  return form.subject_token;
}

/** The asked grant and limits; the actor is read from its token afterwards. */
export function readAsk(form: DelegationForm): Omit<DelegationAsk, 'actor'> {
  const invalid = (detail: string) => new OAuthError('invalid_request', detail);
  const details = parseJson(form.authorization_details, 'authorization_details');
  if (!Array.isArray(details) || details.length !== 1)
    throw new OAuthError(
      'invalid_authorization_details',
      'authorization_details is a JSON array of one tether_privilege entry: the actions and resources delegated',
    );
  const entry = details[0] as Record<string, unknown>;
  if (typeof entry !== 'object' || entry === null || entry.type !== 'tether_privilege')
    throw new OAuthError('invalid_authorization_details', 'the entry must be of type tether_privilege');
  const strings = (value: unknown, name: string): string[] => {
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string'))
      throw new OAuthError('invalid_authorization_details', `${name} is an array of strings`);
    return value;
  };
  const budget = form.call_budget === undefined ? undefined : parseJson(form.call_budget, 'call_budget');
  if (budget !== undefined && (typeof budget !== 'object' || budget === null || Array.isArray(budget)))
    throw invalid('call_budget is a JSON object: { "<action>": <calls> }');
  if (form.idle_timeout !== undefined && (!Number.isInteger(form.idle_timeout) || form.idle_timeout < 60))
    throw invalid('idle_timeout is a whole number of seconds, at least 60');
  return {
    actions: strings(entry.actions, 'actions'),
    resources: strings(entry.resources, 'resources'),
    audiences: form.audience === undefined ? undefined : [form.audience],
    durationSeconds: form.duration,
    idleTimeoutSeconds: form.idle_timeout,
    callBudget: budget as Record<string, number> | undefined,
  };
}

function parseJson(text: string | undefined, name: string): unknown {
  if (text === undefined) throw new OAuthError('invalid_request', `${name} is required`);
  try {
    return JSON.parse(text);
  } catch {
    throw new OAuthError('invalid_request', `${name} is not valid JSON`);
  }
}

/** The parent's key must sign this call's proof, bound to the subject token (`ath`). */
export async function parentProof(
  ctx: BrokerContext,
  header: string | string[] | undefined,
  subjectToken: string,
  claims: OwnAccessTokenClaims,
): Promise<string> {
  try {
    const proof = await verifyBrokerProof(ctx, header, {
      method: 'POST',
      path: '/oauth/token',
      accessToken: subjectToken,
      expectedJkt: claims.cnf.jkt,
    });
    return proof.jkt;
  } catch (err) {
    if (err instanceof DpopError) throw new OAuthError(err.code, err.message);
    throw err;
  }
}

/** The actor token: signed by the key it carries, for this endpoint, fresh, used once. */
export async function verifyActorToken(
  ctx: BrokerContext,
  token: string | undefined,
  parentKey: string,
): Promise<{ name: string; jkt: string }> {
  const invalid = (detail: string) => new OAuthError('invalid_request', `actor_token: ${detail}`);
  if (!token) throw invalid('required: a JWT signed by the key the sub-session will be bound to');
  let payload: JWTPayload;
  let jkt: string;
  try {
    const header = decodeProtectedHeader(token);
    if (!header.jwk) throw new Error('no jwk');
    jkt = await calculateJwkThumbprint(header.jwk);
    ({ payload } = await jwtVerify(token, EmbeddedJWK, {
      algorithms: ACTOR_TOKEN_ALGS,
      typ: ACTOR_TOKEN_JWT_TYPE,
      audience: `${ctx.config.publicUrl}/oauth/token`,
      requiredClaims: ['sub', 'iat', 'exp', 'jti'],
      maxTokenAge: ctx.config.clientAssertionMaxAgeSeconds,
      clockTolerance: ctx.config.clockToleranceSeconds,
      currentDate: new Date(ctx.clock.now()),
    }));
  } catch {
    throw invalid(
      `not a fresh JWT (typ ${ACTOR_TOKEN_JWT_TYPE}, ${ACTOR_TOKEN_ALGS.join('/')}) signed by the key in its jwk header, for ${ctx.config.publicUrl}/oauth/token`,
    );
  }
  if (jkt === parentKey)
    throw invalid("the actor's key is the parent session's: the actor holds a key of its own");
  if (typeof payload.jti !== 'string' || payload.jti.length > 256)
    throw invalid('jti is a string of at most 256');
  let name: string;
  try {
    name = readActorName(payload.sub);
  } catch (err) {
    throw invalid(isTetherError(err) ? err.detail : 'sub names the actor');
  }
  const first = await rememberOnce(ctx.store, 'dpop_jtis', {
    jkt,
    jti: `actor:${payload.jti}`,
    expires_at: ((payload.exp as number) + ctx.config.clockToleranceSeconds) * 1000,
  });
  if (!first) throw invalid('already used (jti replay)');
  return { name, jkt };
}
