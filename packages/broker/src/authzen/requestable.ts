import { findEntitlement } from '@tether-broker/pep';
import type { AuthzenEvaluationRequest } from '@tether-broker/protocol/api';
import canonicalizeModule from 'canonicalize';
import { type JWTPayload, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { BrokerContext } from '../core/context.js';
import { askPolicy } from '../core/policy-facts.js';
import { newId } from '../domain/ids.js';
import type { Principal } from '../domain/principal.js';
import type { Privilege } from '../domain/privilege.js';
import { listPrivileges } from '../store/repositories/privileges.js';
import { PRIVILEGE_DETAIL_TYPE } from '../tokens/access-token.js';
import { SIGNING_ALG } from '../tokens/keys.js';

const canonicalize = canonicalizeModule as unknown as (input: unknown) => string | undefined;

/** The `typ` of a binding token: it is no access token, assertion or proof. */
export const BINDING_TOKEN_TYP = 'authzen-binding+jwt';
/** How long a requestable denial can be submitted. */
export const DENIAL_LIFETIME_SECONDS = 600;

export const accessRequestsPath = '/access/v1/requests';

/** What a binding token binds (Access Request profile §18, inline form): the denied question. */
export interface BoundDenial {
  evaluationId: string;
  tenant: string;
  pep: string;
  template: string;
  subject: unknown;
  resource: unknown;
  action: unknown;
  expiresAt: number;
  jti: string;
}

/** The submission's part that must equal what was denied, compared as canonical JSON (RFC 8785). */
export function sameQuestion(a: unknown, b: unknown): boolean {
  return canonicalize(a) === canonicalize(b);
}

/** subject/resource/action without `properties` of the subject's actor (§18: `act` never binds). */
export function boundParts(q: Pick<AuthzenEvaluationRequest, 'subject' | 'resource' | 'action'>) {
  return { subject: q.subject, resource: q.resource, action: q.action };
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
    const detail = {
      type: PRIVILEGE_DETAIL_TYPE,
      privilege: privilege.name,
      actions: privilege.actions,
      resources: privilege.resources,
    } as const;
    if (!findEntitlement([detail], request.action.name, request.resource.id)) continue;
    const asked = await askPolicy(ctx, ctx.store, {
      action: 'request',
      actor: principal,
      requester: principal,
      privilege,
      ticket: null,
      durationSeconds: privilege.maxDurationSeconds,
      reason: '',
      timeZone,
    });
    // Not permitted without a ticket is still requestable (the ticket comes with the request);
    // a forbid that decided, or a policy error, is not.
    if (asked.allowed || (asked.policies.length === 0 && asked.errors.length === 0)) return privilege;
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
    ...boundParts(request),
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
  if (typeof p.evaluation_id !== 'string' || typeof p.tenant !== 'string' || typeof p.template !== 'string')
    throw new BindingRefused(false, 'the binding token does not describe a denial');
  return {
    evaluationId: p.evaluation_id,
    tenant: p.tenant,
    pep: String(p.pep),
    template: p.template,
    subject: p.subject,
    resource: p.resource,
    action: p.action,
    expiresAt: Number(p.denial_expires_at) * 1000,
    jti: String(p.jti),
  };
}
