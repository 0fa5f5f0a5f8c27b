import { SignJWT } from 'jose';
import type { OutboundClient } from '../net/outbound.js';
import { type ActiveSigningKey, SIGNING_ALG } from '../tokens/keys.js';

/** `typ` of a connector call: the target refuses any other JWT presented as one. */
export const CONNECTOR_CALL_JWT_TYPE = 'tether-connector+jwt';
/** A call is valid this long after it is signed (the target refuses it later, and its `jti` twice). */
const CALL_LIFETIME_SECONDS = 60;
/** Longest answer read from a target: a user name and a secret, with room to spare. */
const MAX_ANSWER_BYTES = 16 * 1024;

export interface WebhookCall {
  action: 'create' | 'destroy';
  /** The broker's issuer (public URL): the target verifies the call with its JWKS. */
  issuer: string;
  /** Where the call goes. */
  url: string;
  /**
   * The call's audience: the connector itself (`<issuer>/v1/connectors/<id>`), which its target
   * is configured with. Not the URL: another tenant may register the same URL, and its calls
   * must be refused there.
   */
  audience: string;
  /** Same on every attempt of one credential: the target makes create and destroy idempotent with it. */
  credentialId: string;
  tenant: string;
  session: string;
  principal: string;
  ticket: string | null;
  validUntil: number;
  now: number;
}

export interface WebhookCreated {
  username: string;
  secret: string;
}

export interface WebhookDestroyed {
  connectionsTerminated: number;
}

/** A target answered, but not as a connector target must: retried like a failed call. */
export class WebhookTargetRefused extends Error {
  override readonly name = 'WebhookTargetRefused';
}

async function signCall(key: ActiveSigningKey, call: WebhookCall): Promise<string> {
  const iat = Math.floor(call.now / 1000);
  return new SignJWT({
    action: call.action,
    credential_id: call.credentialId,
    tenant: call.tenant,
    session: call.session,
    principal: call.principal,
    ...(call.ticket === null ? {} : { ticket: call.ticket }),
    valid_until: Math.floor(call.validUntil / 1000),
  })
    .setProtectedHeader({ alg: SIGNING_ALG, typ: CONNECTOR_CALL_JWT_TYPE, kid: key.kid })
    .setIssuer(call.issuer)
    .setAudience(call.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + CALL_LIFETIME_SECONDS)
    .setJti(globalThis.crypto.randomUUID())
    .sign(key.privateKey);
}

/**
 * One signed call to a webhook connector's target, through the broker's guarded outbound client
 * (https, checked destination, size and time caps, no redirects). The body is a JWS signed by
 * the broker's current signing key (`application/jwt`): the target verifies it with the broker's
 * JWKS, checks `aud` is the connector it was set up for, `typ`, `exp`, and that it has not seen
 * the `jti`.
 * A 2xx answer is success; a `create` answer must be `{ "username": "…", "secret": "…" }`.
 */
export async function callWebhookTarget(
  outbound: OutboundClient,
  key: ActiveSigningKey,
  call: WebhookCall,
): Promise<WebhookCreated | WebhookDestroyed> {
  const response = await outbound.request(call.url, {
    method: 'POST',
    headers: { 'content-type': 'application/jwt', accept: 'application/json' },
    body: await signCall(key, call),
    maxBytes: MAX_ANSWER_BYTES,
  });
  if (response.status < 200 || response.status > 299)
    throw new WebhookTargetRefused(`the target answered ${response.status} to ${call.action}`);
  if (call.action === 'destroy') {
    const answer = parseJson(response.body);
    const terminated = answer?.connections_terminated;
    return { connectionsTerminated: Number.isSafeInteger(terminated) ? (terminated as number) : 0 };
  }
  const answer = parseJson(response.body);
  const { username, secret } = answer ?? {};
  // Shown in receipts and terminals: printable ASCII without spaces, as user names are.
  if (typeof username !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(username))
    throw new WebhookTargetRefused('the target answered create without a usable username');
  if (typeof secret !== 'string' || secret.length > 4096)
    throw new WebhookTargetRefused('the target answered create without a secret');
  return { username, secret };
}

function parseJson(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
