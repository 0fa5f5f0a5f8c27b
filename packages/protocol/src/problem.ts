import { ERROR_CATALOGUE, type ErrorCode } from './errors.js';

/** RFC 9457 problem details, with Tether's stable `code`. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  instance?: string;
  /** Field-level validation messages, when the input failed a schema. */
  errors?: { path: string; message: string }[];
  [extension: string]: unknown;
}

export const PROBLEM_MEDIA_TYPE = 'application/problem+json';

/**
 * The codes of the OpenID AuthZEN Access Request and Approval Profile (§14): their problems
 * carry the profile's URN as `type`, so that any client of the profile understands them.
 */
export const ACCESS_REQUEST_PROFILE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'expired_denial',
  'invalid_denial_binding',
  'duplicate_request',
  'unknown_task',
]);

/** Where each code is documented; the `type` URI of a problem. */
export function problemType(code: ErrorCode): string {
  if (ACCESS_REQUEST_PROFILE_CODES.has(code)) return `urn:openid:authzen:access-request:error:${code}`;
  return `https://tether.dev/errors#${code}`;
}

export function toProblem(
  code: ErrorCode,
  detail?: string,
  extra?: Readonly<Record<string, unknown>>,
): Problem {
  const entry = ERROR_CATALOGUE[code];
  return {
    ...extra,
    type: problemType(code),
    title: entry.title,
    status: entry.status,
    code,
    detail: detail ?? entry.title,
  };
}

/** RFC 6749 §5.2 error codes used by the OAuth endpoints. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  // RFC 6750 §3.1: the caller of introspection or revocation (a protected resource) presented a
  // broker-API token that is invalid, or one without the role the endpoint needs.
  | 'invalid_token'
  | 'insufficient_scope'
  // RFC 9396 §5: the authorization details asked for are not acceptable (a sub-session wider
  // than its parent).
  | 'invalid_authorization_details'
  // RFC 8628 §3.5: the device authorization grant's answers while it waits or fails.
  | 'authorization_pending'
  | 'slow_down'
  | 'access_denied'
  | 'expired_token';

export interface OAuthErrorBody {
  error: OAuthErrorCode;
  error_description: string;
}
