import { base64url } from 'jose';

// Helpers over Web APIs (WebCrypto, TextEncoder), so that the decision path needs nothing from
// `node:*` and runs on any runtime with WebCrypto (core-runtime.test.ts keeps it so).

const encoder = new TextEncoder();

/** base64url(SHA-256(UTF-8 bytes of `text`)). */
export async function sha256Base64url(text: string): Promise<string> {
  return base64url.encode(
    new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', encoder.encode(text))),
  );
}

/** `byteCount` random bytes, base64url. */
export function randomBase64url(byteCount: number): string {
  return base64url.encode(globalThis.crypto.getRandomValues(new Uint8Array(byteCount)));
}

/** Whether the UTF-8 encoding of `text` is longer than `limit` bytes, without encoding short text. */
export function utf8LongerThan(text: string, limit: number): boolean {
  // A UTF-16 code unit encodes to at most 3 bytes, and to at least 1.
  if (text.length * 3 <= limit) return false;
  if (text.length > limit) return true;
  return encoder.encode(text).byteLength > limit;
}
