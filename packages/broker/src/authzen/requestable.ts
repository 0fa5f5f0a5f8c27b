import { createHash } from 'node:crypto';
import type { AuthzenEvaluationRequest } from '@tether-broker/protocol/api';
import canonicalizeModule from 'canonicalize';
import { type JWTPayload, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { BrokerContext } from '../core/context.js';
import { askPolicy } from '../core/policy-facts.js';
import { newId } from '../domain/ids.js';
import type { Principal } from '../domain/principal.js';
import type { Privilege } from '../domain/privilege.js';
import { listPrivileges } from '../store/repositories/privileges.js';
import { SIGNING_ALG } from '../tokens/keys.js';
import { grantCovers } from './subjects.js';

/** RFC 8785 (JCS) canonical JSON. The package is CommonJS with a typed default export. */
export const canonicalize = canonicalizeModule as unknown as (input: unknown) => string | undefined;

/** The `typ` of a binding token: it is no access token, assertion or proof. */
export const BINDING_TOKEN_TYP = 'authzen-binding+jwt';
/** The ticket Cedar is asked with, to learn whether a request with a ticket could be permitted. */
const TICKET_PLACEHOLDER = 'TICKET-0';
/** How long a requestable denial can be submitted. */
export const DENIAL_LIFETIME_SECONDS = 600;

export const accessRequestsPath = '/access/v1/requests';

/** What a binding token binds (Access Request profile §18, inline form): the denied question. */
export interface BoundDenial {
  evaluationId: string;
  tenant: string;
  pep: string;
  template: string;
  bindingHash: string;
  expiresAt: number;
  jti: string;
}

/**
 * The denied question as it binds (Access Request profile §18): subject, resource and action,
 * without the subject's `properties.act` (a PEP may move the actor to `client.actor`).
 */
export function boundParts(q: Pick<AuthzenEvaluationRequest, 'subject' | 'resource' | 'action'>) {
  const { act: _act, ...properties } = (q.subject.properties ?? {}) as Record<string, unknown>;
  const { properties: _all, ...bare } = q.subject;
  const subject = Object.keys(properties).length > 0 ? { ...bare, properties } : bare;
  return { subject, resource: q.resource, action: q.action };
}

/**
 * The question's `binding_hash` (§18, hashed form): base64url SHA-256 of its JCS (RFC 8785)
 * form. A hash rather than the members inline keeps the token small whatever the caller's
 * `properties` hold.
 */
export function bindingHash(q: Pick<AuthzenEvaluationRequest, 'subject' | 'resource' | 'action'>): string {
  return createHash('sha256')
    .update(canonicalize(boundParts(q)) ?? '', 'utf8')
    .digest('base64url');
}

/**
 * The privilege whose request would resolve this denial: it grants the action on the resource
 * at one of the PEP's audiences, and Cedar does not forbid the principal to ask for it. Whether
 * a request is then permitted (with its ticket, its duration) is decided when it is made.
 */
export async function requestablePrivilege(
  ctx: BrokerContext,
  principal: Principal,
  audiences: readonly string[],
  request: AuthzenEvaluationRequest,
  timeZone: string,
): Promise<Privilege | undefined> {
  for (const privilege of await listPrivileges(ctx.store, principal.tenantId)) {
    if (!privilege.audiences.some((a) => audiences.includes(a))) continue;
    const grant = { privilege: privilege.name, actions: privilege.actions, resources: privilege.resources };
    if (!grantCovers(grant, request.action.name, request.resource.id)) continue;
    // Offered only when Cedar would let the principal ask: without a ticket, or, where the
    // privilege takes one, with one (its value is checked when the request is made).
    const ask = (ticket: string | null) =>
      askPolicy(ctx, ctx.store, {
        action: 'request',
        actor: principal,
        requester: principal,
        privilege,
        ticket,
        durationSeconds: privilege.maxDurationSeconds,
        reason: '',
        timeZone,
      });
    if ((await ask(null)).allowed || (privilege.ticket.required && (await ask(TICKET_PLACEHOLDER)).allowed))
      return privilege;
  }
  return undefined;
}

/**
 * The decision context of a requestable denial (Access Request profile §7): where and how to
 * ask, until when, and a binding token signed by the broker over the denied question, so that
 * the submission can be checked without the broker keeping every denial.
 */
export async function requestableContext(
  ctx: BrokerContext,
  pepId: string,
  tenantId: string,
  privilege: Privilege,
  request: AuthzenEvaluationRequest,
): Promise<Record<string, unknown>> {
  const issuer = ctx.config.publicUrl;
  const now = ctx.clock.now();
  const iat = Math.floor(now / 1000);
  const exp = iat + DENIAL_LIFETIME_SECONDS;
  const evaluationId = newId('evaluation');
  const endpoint = `${issuer}${accessRequestsPath}`;
  const key = ctx.keys.signer();
  const bindingToken = await new SignJWT({
    evaluation_id: evaluationId,
    tenant: tenantId,
    pep: pepId,
    template: privilege.name,
    denial_expires_at: exp,
    binding_context_members: [],
    binding_hash: bindingHash(request),
  })
    .setProtectedHeader({ alg: SIGNING_ALG, typ: BINDING_TOKEN_TYP, kid: key.kid })
    .setIssuer(issuer)
    .setAudience(endpoint)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(globalThis.crypto.randomUUID())
    .sign(key.privateKey);
  return {
    evaluation_id: evaluationId,
    evaluated_at: new Date(now).toISOString(),
    reason: 'approval_required',
    access_request: {
      endpoint,
      template: privilege.name,
      expires_at: new Date(exp * 1000).toISOString(),
      binding_token: bindingToken,
      request_schema_url: `${endpoint}/schema/${encodeURIComponent(privilege.name)}`,
      display: {
        title: `Request ${privilege.name}`,
        description: privilege.description || `Ask for the ${privilege.name} privilege`,
      },
    },
  };
}

/** Why a binding token is refused: `expired` (410 expired_denial) or anything else (400). */
export class BindingRefused extends Error {
  constructor(
    readonly expired: boolean,
    message: string,
  ) {
    super(message);
  }
}

/** Verifies a binding token the broker signed: its signature, type, issuer, audience and expiry. */
export async function verifyBindingToken(ctx: BrokerContext, token: string): Promise<BoundDenial> {
  const issuer = ctx.config.publicUrl;
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(
      token,
      async (header) => {
        const key = header.kid ? ctx.keys.verificationKey(header.kid) : undefined;
        if (!key) throw new BindingRefused(false, 'the binding token is not signed by this broker');
        return key;
      },
      {
        algorithms: [SIGNING_ALG],
        typ: BINDING_TOKEN_TYP,
        issuer,
        audience: `${issuer}${accessRequestsPath}`,
        requiredClaims: ['exp', 'iat', 'jti'],
        clockTolerance: ctx.config.clockToleranceSeconds,
        currentDate: new Date(ctx.clock.now()),
      },
    ));
  } catch (err) {
    if (err instanceof BindingRefused) throw err;
    if (err instanceof joseErrors.JWTExpired) throw new BindingRefused(true, 'the denial has expired');
    throw new BindingRefused(false, 'the binding token is not one this broker issued');
  }
  const p = payload as Record<string, unknown>;
  if (
    typeof p.evaluation_id !== 'string' ||
    typeof p.tenant !== 'string' ||
    typeof p.template !== 'string' ||
    typeof p.binding_hash !== 'string'
  )
    throw new BindingRefused(false, 'the binding token does not describe a denial');
  return {
    evaluationId: p.evaluation_id,
    tenant: p.tenant,
    pep: String(p.pep),
    template: p.template,
    bindingHash: p.binding_hash,
    expiresAt: Number(p.denial_expires_at) * 1000,
    jti: String(p.jti),
  };
}
