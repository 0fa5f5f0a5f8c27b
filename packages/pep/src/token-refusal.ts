import type { ErrorCode } from '@tether-broker/protocol';
import { DPOP_DEFAULTS } from './dpop.js';

/** Why a request's access token was refused; each is a code of the protocol's catalogue, HTTP 401. */
export type TokenRefusalCode = Extract<ErrorCode, 'invalid_token' | 'invalid_dpop_proof' | 'use_dpop_nonce'>;

/**
 * A refused request. Answer it with `status` and a `WWW-Authenticate: <wwwAuthenticate>` header.
 * `message` (also `description`) is safe to send to the client: it never echoes the token or
 * the proof, and stays within RFC 6749's `error_description` character set. Internal detail
 * (jose's error, the key source's failure) is kept in `cause`, for the log.
 */
export class TokenRefused extends Error {
  override readonly name = 'TokenRefused';
  readonly code: TokenRefusalCode;
  readonly status = 401 as const;
  /** e.g. `DPoP error="invalid_token", error_description="the token has expired", algs="EdDSA ES256"`. */
  readonly wwwAuthenticate: string;

  constructor(
    code: TokenRefusalCode,
    description: string,
    options?: {
      cause?: unknown;
      /** A challenge without error code, for a request that sent no credentials (RFC 6750 §3.1). */
      bare?: boolean;
    },
  ) {
    super(
      sanitizeDescription(description),
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    const algs = `algs="${DPOP_DEFAULTS.algorithms.join(' ')}"`;
    this.wwwAuthenticate = options?.bare
      ? `DPoP ${algs}`
      : `DPoP error="${code}", error_description="${this.message}", ${algs}`;
  }

  get description(): string {
    return this.message;
  }
}

/** An `invalid_token` refusal; `cause` (internal detail) is kept for the log, never sent. */
export function refused(description: string, cause?: unknown): TokenRefused {
  return new TokenRefused('invalid_token', description, cause === undefined ? undefined : { cause });
}

// RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E; it sits inside a quoted string.
function sanitizeDescription(description: string): string {
  return description.replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '?');
}
