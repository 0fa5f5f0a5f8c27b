import type { OAuthErrorBody, OAuthErrorCode } from '@tether-broker/protocol';

const STATUS: Record<OAuthErrorCode, number> = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  // RFC 9449 §5: at the token endpoint both are answered with 400.
  invalid_dpop_proof: 400,
  use_dpop_nonce: 400,
  invalid_token: 401,
  // RFC 7662 §2.3: a token without the privileges to introspect is answered 401 (not RFC 6750's 403).
  insufficient_scope: 401,
  invalid_authorization_details: 400,
  authorization_pending: 400,
  slow_down: 400,
  access_denied: 400,
  expired_token: 400,
};

/** An error of the OAuth endpoints, answered as RFC 6749 §5.2 JSON rather than problem+json. */
export class OAuthError extends Error {
  readonly error: OAuthErrorCode;
  readonly status: number;
  /** The `WWW-Authenticate` challenge of a 401 (RFC 9110 §15.5.2 requires one), when the thrower knows it. */
  readonly challenge: string | undefined;

  constructor(error: OAuthErrorCode, description: string, options?: { cause?: unknown; challenge?: string }) {
    super(description, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OAuthError';
    this.error = error;
    this.status = STATUS[error] ?? 400;
    this.challenge = options?.challenge;
  }

  toBody(): OAuthErrorBody {
    return { error: this.error, error_description: this.message };
  }
}
