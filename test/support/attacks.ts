import { createPublicKey, type JsonWebKey, randomUUID } from 'node:crypto';
import { base64url, type CompactJWSHeaderParameters, CompactSign, type CryptoKey, type JWK } from 'jose';
import { accessTokenHash, BrokerError, type SessionKey } from '../../packages/client/src/index.js';
import { TokenRefused } from '../../packages/pep/src/index.js';

/** A JOSE header or claims set as an attacker edits it: any member, any value. */
export type JsonObject = Record<string, unknown>;

export interface DecodedJws {
  header: JsonObject;
  payload: JsonObject;
  /** The base64url signature, unchanged. */
  signature: string;
}

const text = new TextEncoder();

/** A compact JWS taken apart, nothing verified: where every forgery starts. */
export function decodeJws(token: string): DecodedJws {
  const [header, payload, signature] = token.split('.');
  const json = (part: string | undefined) =>
    JSON.parse(new TextDecoder().decode(base64url.decode(part ?? ''))) as JsonObject;
  return { header: json(header), payload: json(payload), signature: signature ?? '' };
}

/** Header and payload put together with a signature they were not signed with (or none). */
export function assembleJws(header: JsonObject, payload: JsonObject, signature: string): string {
  const part = (value: JsonObject) => base64url.encode(JSON.stringify(value));
  return `${part(header)}.${part(payload)}.${signature}`;
}

/** The payload of a real token, edited, with the real signature kept: tampering in transit. */
export function tamper(token: string, edit: (payload: JsonObject) => JsonObject): string {
  const { header, payload, signature } = decodeJws(token);
  return assembleJws(header, edit(payload), signature);
}

/** Header and payload signed as given, with any key: an attacker's, an HMAC secret, or the broker's own. */
export async function signJws(
  header: JsonObject,
  payload: JsonObject,
  key: CryptoKey | Uint8Array,
): Promise<string> {
  return new CompactSign(text.encode(JSON.stringify(payload)))
    .setProtectedHeader(header as CompactJWSHeaderParameters)
    .sign(key);
}

/**
 * The SPKI PEM of a public JWK, as bytes: the HMAC "secret" of the classic key-confusion attack,
 * where a verifier that trusts the token's `alg` would check an HS256 MAC with its public key.
 */
export function publicKeyPem(jwk: JWK): Uint8Array {
  const pem = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }).export({
    type: 'spki',
    format: 'pem',
  });
  return text.encode(pem as string);
}

export interface ProofTarget {
  method: string;
  url: string;
  accessToken?: string;
  now: number;
}

/**
 * An RFC 9449 proof built by hand so that any part of it can be wrong. Without overrides it is a
 * valid proof by `key`; `header` and `claims` are merged over the valid ones (a member set to
 * `undefined` is left out), and `signWith` signs with something else than the key it names.
 */
export async function handmadeProof(
  key: SessionKey,
  target: ProofTarget,
  overrides: { header?: JsonObject; claims?: JsonObject; signWith?: CryptoKey | Uint8Array } = {},
): Promise<string> {
  const url = new URL(target.url);
  const header = { alg: key.alg, typ: 'dpop+jwt', jwk: key.publicJwk, ...overrides.header };
  const claims = {
    htm: target.method,
    htu: `${url.origin}${url.pathname}`,
    jti: randomUUID(),
    iat: Math.floor(target.now / 1000),
    ...(target.accessToken === undefined ? {} : { ath: accessTokenHash(target.accessToken) }),
    ...overrides.claims,
  };
  return signJws(header, claims, overrides.signWith ?? key.privateKey);
}

async function rejection<E extends Error>(
  p: Promise<unknown>,
  type: new (...args: never[]) => E,
): Promise<E> {
  try {
    await p;
  } catch (err) {
    if (err instanceof type) return err;
    throw err;
  }
  throw new Error(`expected a ${type.name}, but the call succeeded`);
}

/** The PEP's refusal of a request that must be refused. */
export const pepRefusal = (p: Promise<unknown>): Promise<TokenRefused> => rejection(p, TokenRefused);

/** The broker's refusal (problem `code`, or RFC 6749 `error`) of a call that must be refused. */
export const brokerRefusal = (p: Promise<unknown>): Promise<BrokerError> => rejection(p, BrokerError);
