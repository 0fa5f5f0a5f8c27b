import { PROBLEM_MEDIA_TYPE, toProblem } from '@tether-broker/protocol';
import type { Decision } from '../enforcer.js';

/** The status, headers and RFC 9457 body that answer a denied request. */
export function denialResponse(decision: Decision): {
  status: number;
  headers: Record<string, string>;
  body: string;
} {
  if (decision.allow) throw new TypeError('denialResponse: the decision allows the request');
  const code = decision.code === 'ok' ? 'invalid_token' : decision.code;
  const headers: Record<string, string> = {
    'content-type': PROBLEM_MEDIA_TYPE,
    'cache-control': 'no-store',
  };
  if (decision.wwwAuthenticate !== undefined) headers['www-authenticate'] = decision.wwwAuthenticate;
  if (decision.retryAfterSeconds !== undefined) headers['retry-after'] = String(decision.retryAfterSeconds);
  // RFC 9449 §9: the client retries a use_dpop_nonce refusal with this value.
  if (decision.dpopNonce !== undefined) headers['dpop-nonce'] = decision.dpopNonce;
  return { status: decision.status, headers, body: JSON.stringify(toProblem(code, decision.description)) };
}
