import type { TetherAccessClaims, TetherPrivilegeDetail } from './access-token-claims.js';
import type { MirrorRefusal } from './revocation-mirror.js';
import { TokenRefused } from './token-refusal.js';

/** The code of a decision: `ok`, or a code of the protocol's catalogue. */
export type DecisionCode =
  | 'ok'
  | 'invalid_token'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  | 'insufficient_scope'
  | 'revocation_state_stale';

export interface Decision {
  allow: boolean;
  /** 200 when allowed; else the status to answer with. */
  status: 200 | 401 | 403 | 503;
  code: DecisionCode;
  /** Safe to send to the client. */
  description: string;
  /** Send as `WWW-Authenticate` on 401 and 403. */
  wwwAuthenticate?: string;
  /** Send as `Retry-After` on 503. */
  retryAfterSeconds?: number;
  /** Send as `DPoP-Nonce` (RFC 9449 §9): the nonce this PEP wants in the client's next proofs. */
  dpopNonce?: string;
  /** The session, principal and ticket the token names (when the token verified). */
  session?: string;
  principal?: string;
  ticket?: string;
  /** The entry of `authorization_details` that covered the request (when allowed). */
  entitlement?: TetherPrivilegeDetail;
  claims?: TetherAccessClaims;
}

/** Who a verified token speaks for, as every later decision reports it. */
export type Holder = Pick<Decision, 'session' | 'principal' | 'ticket'>;

export function holderOf(claims: TetherAccessClaims): Holder {
  return { session: claims.sid, principal: claims.sub, ...(claims.ticket ? { ticket: claims.ticket } : {}) };
}

/** 401: the token or proof is refused. */
export function tokenDenied(refusal: TokenRefused, holder: Holder = {}): Decision {
  return {
    allow: false,
    status: 401,
    code: refusal.code,
    description: refusal.description,
    wwwAuthenticate: refusal.wwwAuthenticate,
    ...holder,
  };
}

const MIRROR_REASONS: Record<MirrorRefusal['kind'], (r: MirrorRefusal) => string> = {
  session_ended: (r) => `the session has ended (${(r as { reason: string }).reason})`,
  session_narrowed: () => "the session's entitlement has changed since this token was issued: refresh it",
  key_retired: () => 'the token was signed with a retired broker key',
  tenant_cutoff: () => 'the token was issued before the tenant-wide cut-off',
};

/** 401: the revocation mirror refuses the token. */
export function revoked(refusal: MirrorRefusal, holder: Holder): Decision {
  return tokenDenied(new TokenRefused('invalid_token', MIRROR_REASONS[refusal.kind](refusal)), holder);
}

/** 503: the mirror is past its staleness budget. */
export function stale(budgetMs: number, holder: Holder): Decision {
  return {
    allow: false,
    status: 503,
    code: 'revocation_state_stale',
    description: `revocation state not confirmed fresh within ${budgetMs} ms`,
    retryAfterSeconds: Math.max(1, Math.ceil(budgetMs / 10_000)),
    ...holder,
  };
}

/** 403: no entry of the entitlement covers the action on the resource. */
export function insufficientScope(description: string, holder: Holder): Decision {
  // RFC 6749 error_description character set; it sits inside a quoted string.
  const quoted = description.replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '?');
  return {
    allow: false,
    status: 403,
    code: 'insufficient_scope',
    description,
    wwwAuthenticate: `DPoP error="insufficient_scope", error_description="${quoted}"`,
    ...holder,
  };
}
