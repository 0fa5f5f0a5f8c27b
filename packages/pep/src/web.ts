import { base64url } from 'jose';

// Helpers over Web APIs (WebCrypto, TextEncoder), so that the decision path needs nothing from
// `node:*` and runs on any runtime with WebCrypto (core-runtime.test.ts keeps it so).

const encoder = new TextEncoder();

/** The part of Node's `crypto` module used here. */
interface NodeHashing {
  createHash(algorithm: 'sha256'): {
    update(data: string, encoding: 'utf8'): { digest(encoding: 'base64url'): string };
  };
  /** One-shot hashing (Node 20.12, 21.7 and later): no Hash object per call. Strings are hashed as UTF-8. */
  hash?: (algorithm: 'sha256', data: string, outputEncoding: 'base64url') => string;
}

/**
 * Node's own hashing when the runtime is Node (20.16 and later have `process.getBuiltinModule`),
 * reached without an import so that this module still loads anywhere. WebCrypto's digest is a
 * thread-pool job per call: a broker verifying a thousand PEPs' proofs at once spent about a
 * second of its thread on them (two digests per proof).
 */
const nodeHashing = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.('node:crypto') as NodeHashing | undefined;

/** base64url(SHA-256(UTF-8 bytes of `text`)), with WebCrypto: the same value on any runtime. */
export async function webSha256Base64url(text: string): Promise<string> {
  return base64url.encode(
    new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', encoder.encode(text))),
  );
}

/** base64url(SHA-256(UTF-8 bytes of `text`)): Node's hashing on Node, else WebCrypto's. */
export async function sha256Base64url(text: string): Promise<string> {
  return sha256Base64urlSync(text) ?? webSha256Base64url(text);
}

/**
 * base64url(SHA-256(UTF-8 bytes of `text`)) at once where the runtime hashes synchronously
 * (Node), else `undefined` (use {@link sha256Base64url}). On the decision path each await is
 * a trip through the microtask queue for a hash that takes a microsecond.
 */
export function sha256Base64urlSync(text: string): string | undefined {
  if (nodeHashing === undefined) return undefined;
  if (nodeHashing.hash !== undefined) return nodeHashing.hash('sha256', text, 'base64url');
  return nodeHashing.createHash('sha256').update(text, 'utf8').digest('base64url');
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
