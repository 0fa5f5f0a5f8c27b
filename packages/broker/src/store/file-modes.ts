import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

/** The files of the embedded store: the database and SQLite's companions. */
export const SQLITE_FILES = ['tether.db', 'tether.db-wal', 'tether.db-shm', 'tether.db-journal'] as const;

/** Owner-only modes: the data directory holds the store and the key-encryption key. */
export const DATA_DIR_MODE = 0o700;
export const DATA_FILE_MODE = 0o600;

/**
 * Narrows `path` to `mode` when it grants anything more (a stricter mode is left alone),
 * saying so: a looser mode means someone could already have read the file.
 */
function tighten(path: string, mode: number, logger: Logger | undefined): void {
  const current = statSync(path).mode & 0o777;
  if ((current & ~mode) === 0) return;
  chmodSync(path, mode);
  logger?.warn(
    { path, was: current.toString(8), now: mode.toString(8) },
    'tightened the permissions of a data file that others could read or write; if they could, treat its content as disclosed',
  );
}

/**
 * Creates the data directory owner-only (0700) or tightens an existing one, and tightens the
 * embedded store's files to 0600. The KEK file is not touched here: `loadKek` creates it 0600
 * and refuses a looser one (a key others could read must be replaced, not just hidden again).
 */
export function secureDataDir(dataDir: string, logger?: Logger): void {
  mkdirSync(dataDir, { recursive: true, mode: DATA_DIR_MODE });
  tighten(dataDir, DATA_DIR_MODE, logger);
  for (const name of SQLITE_FILES) {
    const path = join(dataDir, name);
    if (existsSync(path)) tighten(path, DATA_FILE_MODE, logger);
  }
}
