import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { tetherHome } from '@tether-broker/client';
import { CliError, EXIT } from './errors.js';
import { type CliIo, io } from './io.js';

/** The store's clock: the time, and a pause between two tries of a held lock. */
export type StoreClock = Pick<CliIo, 'now' | 'sleep'>;

/**
 * A session this machine holds, as stored in `$TETHER_HOME/sessions/<session>.json` (0600):
 * who it belongs to, what it grants, its DPoP private key and its current tokens. The file is
 * a credential: whoever reads it can use the session until it ends.
 */
export interface StoredSession {
  broker: string;
  tenant: string;
  principal: string;
  session: string;
  request: string;
  privilege: string;
  audiences: string[];
  /** ISO 8601; the broker never honours the session after it. */
  hard_expires_at: string;
  /** The session's private JWK (Ed25519). */
  key: Record<string, unknown>;
  access_token: string;
  refresh_token: string;
  /** ISO 8601: when the access token expires. */
  expires_at: string;
}

/** Session ids as the broker mints them; nothing else ever becomes a file name. */
const SESSION_ID = /^ses_[0-9a-z]{26}$/;

/** A lock older than this is left over from a crashed process and may be taken. */
const STALE_LOCK_MS = 60_000;
const LOCK_WAIT_MS = 15_000;
const LOCK_POLL_MS = 25;

export function isSessionId(text: string): boolean {
  return SESSION_ID.test(text);
}

function assertSessionId(id: string): void {
  if (!isSessionId(id)) {
    throw new CliError(
      'invalid_argument',
      `${JSON.stringify(id)} is not a session id (ses_ followed by 26 letters or digits)`,
      EXIT.usage,
    );
  }
}

function unusable(path: string, why: string): CliError {
  return new CliError(
    'session_file_unusable',
    `${path} ${why}`,
    EXIT.unreachable,
    'end the session with `tether session end <id>` and start a new one',
  );
}

const STRING_FIELDS = [
  'broker',
  'tenant',
  'principal',
  'session',
  'request',
  'privilege',
  'hard_expires_at',
  'access_token',
  'refresh_token',
  'expires_at',
] as const;

function parseStored(path: string, text: string): StoredSession {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw unusable(path, 'is not valid JSON');
  }
  const record = parsed as Partial<Record<string, unknown>>;
  const valid =
    typeof parsed === 'object' &&
    parsed !== null &&
    STRING_FIELDS.every((field) => typeof record[field] === 'string') &&
    Array.isArray(record.audiences) &&
    record.audiences.every((a) => typeof a === 'string') &&
    typeof record.key === 'object' &&
    record.key !== null &&
    typeof (record.key as { d?: unknown }).d === 'string';
  if (!valid) throw unusable(path, 'is not a Tether session file');
  return parsed as StoredSession;
}

/**
 * The sessions held on this machine, one 0600 file each in `$TETHER_HOME/sessions` (0700),
 * plus `current`: a file naming the session `fetch` uses by default.
 *
 * Files are replaced atomically (written to a temporary file, synced, renamed), so a reader
 * never sees half a file and a crash never loses the refresh token in use: a refresh token is
 * single-use, and presenting a spent one ends the session.
 *
 * @example
 * ```ts
 * const store = new SessionStore(tetherHome());
 * store.save(record);
 * store.setCurrent(record.session);
 * ```
 */
export class SessionStore {
  readonly dir: string;
  readonly #clock: StoreClock;

  /** `clock`: for waiting on a held lock (default: the command's, see `io.ts`). */
  constructor(home: string, clock: StoreClock = io()) {
    this.dir = join(home, 'sessions');
    this.#clock = clock;
  }

  /** The store of `$TETHER_HOME` (default `~/.tether`). */
  static fromEnv(env: NodeJS.ProcessEnv = io().env): SessionStore {
    return new SessionStore(tetherHome(env));
  }

  path(id: string): string {
    assertSessionId(id);
    return join(this.dir, `${id}.json`);
  }

  has(id: string): boolean {
    return isSessionId(id) && existsSync(this.path(id));
  }

  /** Reads a stored session. One readable by group or others is refused: it holds a private key. */
  load(id: string): StoredSession {
    const path = this.path(id);
    let text: string;
    try {
      const mode = statSync(path).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        throw unusable(path, `is readable by others (mode ${mode.toString(8)}); run: chmod 600 ${path}`);
      }
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if (err instanceof CliError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new CliError(
          'no_session',
          `no key for session ${id} on this machine (${path})`,
          EXIT.refused,
          '`tether session list` shows the sessions held here',
        );
      }
      throw unusable(path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
    }
    const record = parseStored(path, text);
    if (record.session !== id) throw unusable(path, `holds session ${record.session}, not ${id}`);
    return record;
  }

  /** Writes (or replaces) a session's file atomically, mode 0600, in a 0700 directory. */
  save(record: StoredSession): void {
    const path = this.path(record.session);
    this.#ensureDir();
    writeAtomically(path, `${JSON.stringify(record, null, 2)}\n`);
  }

  /** The ids of the sessions held here, sorted. */
  ids(): string[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((name) => name.endsWith('.json'))
      .map((name) => name.slice(0, -'.json'.length))
      .filter(isSessionId)
      .sort();
  }

  /** Deletes a session's file (and the current pointer if it named it). Answers whether there was one. */
  remove(id: string): boolean {
    let removed = false;
    try {
      unlinkSync(this.path(id));
      removed = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (this.#currentPointer() === id) this.clearCurrent();
    return removed;
  }

  /**
   * Deletes the files of sessions past their hard expiry: the broker honours them no more,
   * and a session's key must not outlive it. Unreadable files are left alone. Answers the ids removed.
   */
  pruneExpired(now: number): string[] {
    const removed: string[] = [];
    for (const id of this.ids()) {
      let hardExpiresAt: number;
      try {
        hardExpiresAt = Date.parse(this.load(id).hard_expires_at);
      } catch {
        continue;
      }
      if (now >= hardExpiresAt && this.remove(id)) removed.push(id);
    }
    return removed;
  }

  /** The current session's id, if it is set and its file is still here. */
  current(): string | undefined {
    const id = this.#currentPointer();
    return id !== undefined && isSessionId(id) && existsSync(this.path(id)) ? id : undefined;
  }

  /** What `current` says, whether or not that session's file is still here. */
  #currentPointer(): string | undefined {
    try {
      return readFileSync(join(this.dir, 'current'), 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  setCurrent(id: string): void {
    assertSessionId(id);
    this.#ensureDir();
    writeAtomically(join(this.dir, 'current'), `${id}\n`);
  }

  clearCurrent(): void {
    try {
      unlinkSync(join(this.dir, 'current'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /**
   * Runs `work` holding the session's lock (`<id>.lock`, created exclusively), so that two
   * processes never refresh the same session at once: the second would present a spent
   * refresh token and end the session. Waits for a held lock; takes over one left by a crash.
   */
  async withLock<T>(id: string, work: () => Promise<T>): Promise<T> {
    const lock = `${this.path(id)}.lock`;
    this.#ensureDir();
    const { now, sleep } = this.#clock;
    const deadline = now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        closeSync(openSync(lock, 'wx', 0o600));
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      if (isStale(lock, now())) {
        removeQuietly(lock);
        continue;
      }
      if (now() >= deadline) {
        throw new CliError(
          'session_busy',
          `session ${id} is locked by another tether process (${lock})`,
          EXIT.refused,
          `if no other tether command is running, remove ${lock}`,
        );
      }
      await sleep(LOCK_POLL_MS);
    }
    try {
      return await work();
    } finally {
      removeQuietly(lock);
    }
  }

  #ensureDir(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    // A directory made earlier with a looser mode is tightened: it lists who holds what.
    if ((statSync(this.dir).mode & 0o077) !== 0) chmodSync(this.dir, 0o700);
  }
}

function isStale(path: string, now: number): boolean {
  try {
    return now - statSync(path).mtimeMs > STALE_LOCK_MS;
  } catch {
    return false;
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

/** Write a temporary file beside `path` (0600, synced), then rename it over `path`. */
function writeAtomically(path: string, text: string): void {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    removeQuietly(temp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(temp, path);
  } catch (err) {
    removeQuietly(temp);
    throw err;
  }
}
