import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { IdentityFile } from '@tether-broker/protocol';

/** `TETHER_HOME`, or `~/.tether`. */
export function tetherHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.TETHER_HOME && env.TETHER_HOME !== '' ? env.TETHER_HOME : join(homedir(), '.tether');
}

export class IdentityError extends Error {
  override readonly name = 'IdentityError';
}

/**
 * Reads an identity file. One readable by group or others is refused: it holds a private key.
 */
export function loadIdentity(path: string): IdentityFile {
  let text: string;
  try {
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new IdentityError(
        `${path} is readable by others (mode ${mode.toString(8)}); run: chmod 600 ${path}`,
      );
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof IdentityError) throw err;
    throw new IdentityError(
      `cannot read identity ${path}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new IdentityError(`${path} is not valid JSON`);
  }
  const id = parsed as Partial<IdentityFile>;
  if (
    typeof id.broker !== 'string' ||
    typeof id.tenant !== 'string' ||
    typeof id.principal !== 'string' ||
    typeof id.key !== 'object' ||
    id.key === null ||
    typeof (id.key as { d?: unknown }).d !== 'string'
  ) {
    throw new IdentityError(
      `${path} is not a Tether identity (needs broker, tenant, principal and a private key)`,
    );
  }
  return id as IdentityFile;
}

/** Writes an identity file with mode 0600 (and its directory 0700). */
export function writeIdentity(path: string, identity: IdentityFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // A fresh 0600 file renamed into place: an existing file's looser mode or a symlink at the
  // path never receives the key, and a reader never sees half a file.
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(identity, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}
