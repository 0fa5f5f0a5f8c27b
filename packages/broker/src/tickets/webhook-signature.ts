import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { WebhookKind } from '../domain/ticket.js';

/**
 * The header each ticket system signs its deliveries in: `sha256=<hex HMAC-SHA256 of the raw
 * body>` under the shared secret. GitHub uses `X-Hub-Signature-256`; Jira Cloud, for a
 * webhook with a secret, `X-Hub-Signature`; the generic webhook `X-Tether-Signature`.
 */
export const SIGNATURE_HEADER: Record<WebhookKind, string> = {
  github: 'x-hub-signature-256',
  jira: 'x-hub-signature',
  generic: 'x-tether-signature',
};

const SIGNATURE_SHAPE = /^sha256=([0-9a-fA-F]{64})$/;

/** A new shared secret: 256 random bits, base64url, to paste into the ticket system. */
export function newWebhookSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Whether `header` is the HMAC-SHA256 of `body` under `secret`. The comparison takes the same
 * time wherever the first wrong byte is; a header of the wrong shape (missing, repeated, not
 * 64 hex digits) is simply not a match.
 */
export function signatureMatches(secret: string, body: Buffer, header: unknown): boolean {
  if (typeof header !== 'string') return false;
  const match = SIGNATURE_SHAPE.exec(header.trim());
  if (!match?.[1]) return false;
  const expected = createHmac('sha256', secret).update(body).digest();
  const given = Buffer.from(match[1], 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
