import {
  type CryptoKey,
  compactVerify,
  decodeProtectedHeader,
  errors,
  type ProtectedHeaderParameters,
} from 'jose';
import type { KeySource } from './jwks.js';
import { refused } from './token-refusal.js';

export function readHeader(token: string, algorithms: readonly string[]): { alg: string; kid: string } {
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch (cause) {
    throw refused('the token header is not base64url-encoded JSON', cause);
  }
  if (!isAccessTokenTyp(header.typ)) throw refused('the token typ header must be at+jwt (RFC 9068)');
  const { alg, kid } = header;
  if (alg === 'none') throw refused('unsigned tokens (alg none) are refused');
  if (typeof alg === 'string' && /^HS\d+$/.test(alg)) {
    throw refused('symmetric token algorithms (HS256, HS384, HS512) are refused');
  }
  if (typeof alg !== 'string' || !algorithms.includes(alg)) {
    throw refused(`the token alg is not an accepted algorithm (${algorithms.join(', ')})`);
  }
  if (typeof kid !== 'string' || kid === '') throw refused('the token header has no kid');
  return { alg, kid };
}

// RFC 9068 §4: "at+jwt" or "application/at+jwt"; media types compare case-insensitively.
function isAccessTokenTyp(typ: unknown): boolean {
  if (typeof typ !== 'string') return false;
  const lower = typ.toLowerCase();
  return lower === 'at+jwt' || lower === 'application/at+jwt';
}

export async function findKey(keys: KeySource, kid: string, alg: string): Promise<CryptoKey> {
  let key: CryptoKey | undefined;
  try {
    key = await keys.getKey(kid);
  } catch (cause) {
    // Fail closed: without the issuer's keys, no token can be trusted.
    throw refused('the issuer signing keys are unavailable, so the token cannot be verified', cause);
  }
  if (key === undefined) throw refused('the token kid is not a signing key of the issuer');
  if (!keyFitsAlg(key, alg)) throw refused('the signing key named by kid does not fit the token alg');
  return key;
}

function keyFitsAlg(key: CryptoKey, alg: string): boolean {
  const algorithm = key.algorithm as { name: string; namedCurve?: string };
  if (alg === 'EdDSA' || alg === 'Ed25519') return algorithm.name === 'Ed25519';
  if (alg === 'ES256') return algorithm.name === 'ECDSA' && algorithm.namedCurve === 'P-256';
  return false;
}

export async function verifySignature(
  token: string,
  key: CryptoKey,
  alg: string,
): Promise<Record<string, unknown>> {
  let bytes: Uint8Array;
  try {
    ({ payload: bytes } = await compactVerify(token, key, { algorithms: [alg] }));
  } catch (cause) {
    if (cause instanceof errors.JWSSignatureVerificationFailed) {
      throw refused('the token signature does not verify', cause);
    }
    throw refused('the token is not a valid JWS', cause);
  }
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw refused('the token payload is not a JSON object', cause);
  }
  if (!isObject(payload)) throw refused('the token payload is not a JSON object');
  return payload;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
