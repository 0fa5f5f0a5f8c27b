import { existsSync, readFileSync } from 'node:fs';
import type { JWK } from 'jose';
import { calculateJwkThumbprint } from 'jose/jwk/thumbprint';
import { exportJWK } from 'jose/key/export';
import { generateKeyPair } from 'jose/key/generate/keypair';
import { CliError, EXIT } from './errors.js';

/** JWK members that only a private key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

/**
 * Reads a public JWK from a file (a bare JWK, or `{ "jwk": … }`). A private key is refused
 * here, before anything is sent: the private key never leaves its holder.
 */
export function readPublicJwk(path: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'not valid JSON';
    throw new CliError('invalid_key_file', `cannot read a JWK from ${path} (${reason})`, EXIT.usage);
  }
  const candidate = (parsed as { jwk?: unknown }).jwk ?? parsed;
  if (typeof candidate !== 'object' || candidate === null || Array.isArray(candidate)) {
    throw new CliError('invalid_key_file', `${path} does not hold a JWK object`, EXIT.usage);
  }
  const jwk = candidate as Record<string, unknown>;
  if (PRIVATE_MEMBERS.some((m) => m in jwk)) {
    throw new CliError(
      'invalid_key_file',
      `${path} holds a private key; nothing was sent`,
      EXIT.usage,
      'register the public part only (or let `tether principal keygen` make a key pair)',
    );
  }
  return jwk;
}

/** A fresh Ed25519 key pair: the private JWK (with `kid` = RFC 7638 thumbprint) and the public one. */
export async function newEd25519(): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'EdDSA' }, publicJwk };
}

/** Refuses to overwrite a file unless forced. */
export function assertWritable(path: string, force: boolean | undefined): void {
  if (existsSync(path) && !force) {
    throw new CliError(
      'file_exists',
      `${path} already exists; it is not overwritten`,
      EXIT.usage,
      'choose another --out, or pass --force',
    );
  }
}
