/**
 * The one catalogue of Tether error codes.
 *
 * Every error Tether returns carries one of these codes. The HTTP status and the public title
 * live here, next to the code, so that the API, the CLI and the docs can never disagree.
 * `docs/errors.md` documents each code; a test keeps the two in step.
 */
export const ERROR_CATALOGUE = {
  // Input
  invalid_request: { status: 400, title: 'The request is malformed or fails validation' },
  unsupported_media_type: { status: 415, title: 'The request body has an unsupported content type' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  route_not_found: { status: 404, title: 'No such route' },
  method_not_allowed: { status: 405, title: 'Method not allowed on this route' },
  rate_limited: { status: 429, title: 'Too many requests; retry after the time in Retry-After' },
  // Authentication and authorisation
  unauthenticated: { status: 401, title: 'A valid access token is required' },
  invalid_token: { status: 401, title: 'The access token is invalid or expired' },
  forbidden: { status: 403, title: 'The caller is not allowed to do this' },
  principal_disabled: { status: 403, title: 'The principal is disabled' },
  audience_not_enforced: {
    status: 403,
    title: 'The enforcement point does not enforce this audience, or the session is not for it',
  },
  key_proof_required: {
    status: 403,
    title: 'Adding a key to yourself needs a fresh proof signed by one of your registered keys',
  },
  invalid_signature: { status: 401, title: 'The webhook delivery is not signed with its secret' },
  // Records
  not_found: { status: 404, title: 'No such record in this tenant' },
  already_exists: { status: 409, title: 'A record with that name already exists' },
  record_in_use: { status: 409, title: 'The record is still referenced' },
  invalid_key: { status: 400, title: 'The key is not an acceptable public key' },
  destination_refused: { status: 400, title: 'The broker does not call that URL' },
  audience_not_in_tenant: { status: 400, title: "The audience is not one of the tenant's own audiences" },
  policy_invalid: { status: 422, title: 'The Cedar policy set is invalid' },
  invalid_contract_window: {
    status: 422,
    title: "The principal's contract window is not valid: its end must be after its start, and not past",
  },
  // Providers, customers and relationships (the MSP model)
  not_a_provider: { status: 403, title: 'Only a provider tenant has customers and proposes relationships' },
  invalid_relationship: {
    status: 422,
    title: 'The relationship is not valid: its window, groups, privileges or approvals',
  },
  relationship_not_active: {
    status: 409,
    title: 'The relationship is not active: not accepted yet, not started, past its end or ended',
  },
  not_covered_by_relationship: {
    status: 403,
    title: 'No active relationship lets this operator request this privilege of this customer',
  },
  relationship_tampered: {
    status: 409,
    title: "The relationship's record was changed outside the broker and grants nothing",
  },
  seat_restricted: {
    status: 403,
    title: "A provider operator's seat in a customer tenant cannot be given roles, keys or changes",
  },
  // Access requests
  not_eligible: { status: 403, title: 'Policy does not allow this principal to request this privilege' },
  contract_not_active: {
    status: 403,
    title: "The principal's contract window has not started or has ended",
  },
  ticket_required: { status: 422, title: 'This privilege needs a ticket reference' },
  ticket_pattern_mismatch: {
    status: 422,
    title: "The ticket reference does not match the privilege's ticket rule",
  },
  duration_exceeds_max: { status: 422, title: "The requested duration exceeds the privilege's maximum" },
  ticket_closed: { status: 409, title: 'The ticket is closed' },
  ticket_not_found: { status: 422, title: 'The ticket is not in the ticket register as the rule requires' },
  ticket_not_assigned: { status: 403, title: 'The ticket is not assigned to the requester' },
  self_approval_forbidden: { status: 403, title: 'A requester may not review their own request' },
  approver_not_eligible: { status: 403, title: 'This principal may not review this request' },
  duplicate_review: { status: 409, title: 'This principal has already reviewed this request' },
  request_not_pending: { status: 409, title: 'The request is no longer pending' },
  request_expired: { status: 409, title: 'The request expired before it was resolved' },
  // Sessions
  not_requester: { status: 403, title: 'Only the requester may activate this request' },
  request_not_approved: { status: 409, title: 'The request is not approved' },
  approval_no_longer_valid: {
    status: 409,
    title: 'The approvals of the request no longer satisfy the approval rule as it stands',
  },
  activation_window_closed: { status: 409, title: 'The approved request can no longer be activated' },
  already_activated: { status: 409, title: 'The request has already been activated' },
  session_not_live: { status: 409, title: 'The session has ended or expired' },
  extension_pending: { status: 409, title: 'The session already has a pending extension request' },
  expired_denial: { status: 410, title: 'The denial has expired' },
  invalid_denial_binding: { status: 400, title: 'The submission does not match the denial it cites' },
  duplicate_request: { status: 409, title: 'This denial, or this idempotency key, was already submitted' },
  unknown_task: { status: 404, title: 'No such access request task' },
  invalid_delegation: { status: 400, title: 'The sub-session asked for is not within its parent session' },
  delegation_too_deep: { status: 400, title: 'Sub-sessions may not be nested this deep' },
  passkey_refused: { status: 401, title: 'The passkey or enrolment link was refused' },
  fresh_verification_required: { status: 403, title: 'This approval needs a fresh passkey verification' },
  recording_out_of_order: {
    status: 409,
    title: 'The recording chunk is not the one the session expects next',
  },
  recording_complete: { status: 409, title: "The session's recording is complete" },
  recording_too_large: { status: 413, title: "The session's recording would exceed its size limit" },
  invalid_dpop_proof: { status: 401, title: 'The DPoP proof is missing or invalid' },
  use_dpop_nonce: { status: 401, title: 'The server requires a DPoP nonce' },
  // Enforcement points (PEP denials)
  insufficient_scope: {
    status: 403,
    title: "The session's entitlement does not cover this action on this resource",
  },
  revocation_state_stale: {
    status: 503,
    title: 'The enforcement point cannot confirm its revocation state is fresh',
  },
  upstream_unavailable: {
    status: 502,
    title: 'The gateway could not get an answer from the service behind it',
  },
  // Signals out (SSF transmitter)
  stream_disabled: { status: 409, title: 'The event stream is disabled' },
  // Store
  store_schema_too_new: { status: 503, title: 'The store was migrated by a newer Tether' },
  store_unavailable: { status: 503, title: 'The store is not reachable' },
  // Last resort; a test makes sure no route produces it for bad input.
  internal_error: { status: 500, title: 'Internal error' },
} as const satisfies Record<string, { status: number; title: string }>;

/** A stable, documented error code. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** All codes, for exhaustiveness checks and documentation tests. */
export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CATALOGUE, value);
}

export function statusOf(code: ErrorCode): number {
  return ERROR_CATALOGUE[code].status;
}

/**
 * The error every Tether component throws.
 *
 * `detail` is safe to show a client; `cause` is for the log only and never leaves the process.
 *
 * @example
 * ```ts
 * throw new TetherError('duplicate_review', 'alice has already approved this request');
 * ```
 */
/**
 * Marks every TetherError, under a registry symbol: a program that holds two copies of this
 * package (the CLI's bundle beside the broker it loads) still recognises the other's errors,
 * which `instanceof` alone would not.
 */
const TETHER_ERROR_BRAND = Symbol.for('@tether-broker/protocol/TetherError');

export class TetherError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string;
  /** Extra, client-safe fields (for example the policy engine's messages). */
  readonly extra: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    detail?: string,
    options?: { cause?: unknown; extra?: Record<string, unknown> },
  ) {
    super(
      detail ?? ERROR_CATALOGUE[code].title,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'TetherError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.detail = detail ?? ERROR_CATALOGUE[code].title;
    this.extra = options?.extra;
    Object.defineProperty(this, TETHER_ERROR_BRAND, { value: true });
  }
}

/** Whether `err` is a TetherError, from this copy of the package or from another one. */
export function isTetherError(err: unknown): err is TetherError {
  return (
    err instanceof TetherError ||
    (err instanceof Error && (err as unknown as Record<symbol, unknown>)[TETHER_ERROR_BRAND] === true)
  );
}
