import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TetherError } from '@tether-broker/protocol';
import { base64url, CompactEncrypt, compactDecrypt, errors as joseErrors } from 'jose';

/** The key-encryption key that protects private keys at rest, with a short id that names it. */
export interface Kek {
  key: Uint8Array;
  /** First 16 hex digits of SHA-256(key): tells a wrong KEK from corrupt data. Not secret. */
  id: string;
}

function kekFrom(bytes: Uint8Array): Kek {
  if (bytes.length !== 32)
    throw new TetherError('invalid_request', 'the key-encryption key must be 32 bytes');
  return { key: bytes, id: createHash('sha256').update(bytes).digest('hex').slice(0, 16) };
}

/**
 * The KEK from configuration (`TETHER_KEK`) or from `<dataDir>/kek`, created with mode 0600
 * on first use. A file readable by others is refused rather than trusted.
 */
export function loadKek(options: { kek?: string | undefined; dataDir: string }): Kek {
  if (options.kek) return kekFrom(base64url.decode(options.kek));
  const path = join(options.dataDir, 'kek');
  if (!existsSync(path)) {
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    writeFileSync(path, `${base64url.encode(randomBytes(32))}\n`, { mode: 0o600, flag: 'wx' });
    chmodSync(path, 0o600);
  }
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new TetherError(
      'invalid_request',
      `${path} is readable by others (mode ${mode.toString(8)}); run: chmod 600 ${path}`,
    );
  }
  return kekFrom(base64url.decode(readFileSync(path, 'utf8').trim()));
}

/**
 * Facts a sealed secret is bound to: they go into the JWE protected header, which A256GCM
 * authenticates as associated data (RFC 7516 §5.1 step 14), and {@link openSecret} refuses the
 * secret unless the caller's facts are the ones it was sealed with. A sealed signing key copied
 * to another row, or a row whose `kid` or public key was changed, no longer opens.
 */
export type SealBinding = Readonly<Record<string, string>>;

/** Header names the binding is written under: prefixed, so they never collide with JOSE's own. */
const BOUND = 'tether_';

/**
 * Seals a secret (a private JWK) as a compact JWE: `dir` + A256GCM under the KEK, with
 * `binding`, when given, as authenticated associated data.
 */
export async function sealSecret(kek: Kek, plaintext: string, binding?: SealBinding): Promise<string> {
  const bound = Object.fromEntries(Object.entries(binding ?? {}).map(([k, v]) => [`${BOUND}${k}`, v]));
  return new CompactEncrypt(new TextEncoder().encode(plaintext))
    .setProtectedHeader({ ...bound, alg: 'dir', enc: 'A256GCM', kid: kek.id })
    .encrypt(kek.key);
}

/**
 * Opens a sealed secret. With `binding`, the secret must have been sealed with exactly these
 * facts (no more, no fewer); without it, it must have been sealed with none. Either way a
 * mismatch is reported like corrupt data: the caller learns nothing it could aim with.
 */
export async function openSecret(kek: Kek, sealed: string, binding?: SealBinding): Promise<string> {
  let result: Awaited<ReturnType<typeof compactDecrypt>>;
  try {
    result = await compactDecrypt(sealed, kek.key, {
      keyManagementAlgorithms: ['dir'],
      contentEncryptionAlgorithms: ['A256GCM'],
    });
  } catch (err) {
    const wrongKek = err instanceof joseErrors.JWEDecryptionFailed;
    throw new TetherError(
      'store_unavailable',
      wrongKek
        ? 'a sealed key cannot be opened with this key-encryption key (is TETHER_KEK the one the store was created with?)'
        : 'a sealed key is corrupt',
    );
  }
  // Decryption authenticated the header; now it must name what the caller holds.
  const header = result.protectedHeader as Record<string, unknown>;
  const sealedWith = Object.keys(header).filter((k) => k.startsWith(BOUND));
  const expected = Object.entries(binding ?? {});
  const matches =
    sealedWith.length === expected.length && expected.every(([k, v]) => header[`${BOUND}${k}`] === v);
  if (!matches)
    throw new TetherError('store_unavailable', 'a sealed key does not belong to the row it is in');
  return new TextDecoder().decode(result.plaintext);
}
