import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CliError } from './errors.js';
import { SessionStore, type StoredSession } from './session-store.js';

const ID = 'ses_0123456789abcdefghjkmnpqrs';
const OTHER = 'ses_zyxwvutsrqpnmkjhgfedcba987';

function record(id = ID, overrides: Partial<StoredSession> = {}): StoredSession {
  return {
    broker: 'http://127.0.0.1:8700',
    tenant: 'ten_1',
    principal: 'prn_1',
    session: id,
    request: 'req_1',
    privilege: 'prv_1',
    audiences: ['http://127.0.0.1:8701'],
    hard_expires_at: new Date(Date.now() + 3_600_000).toISOString(),
    key: { kty: 'OKP', crv: 'Ed25519', x: 'public', d: 'private' },
    access_token: 'at-1',
    refresh_token: 'rt-1',
    expires_at: new Date(Date.now() + 300_000).toISOString(),
    ...overrides,
  };
}

const mode = (path: string) => statSync(path).mode & 0o777;

describe('the session store in $TETHER_HOME/sessions', () => {
  let home: string;
  let store: SessionStore;

  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'tether-store-'));
    store = new SessionStore(home);
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  it('writes each session as a 0600 file in a 0700 directory, and reads it back', () => {
    const saved = record();
    store.save(saved);
    expect(mode(store.dir)).toBe(0o700);
    expect(mode(store.path(ID))).toBe(0o600);
    expect(store.load(ID)).toEqual(saved);
    expect(store.ids()).toEqual([ID]);
  });

  it('tightens a sessions directory that others could list', () => {
    mkdirSync(join(home, 'sessions'), { mode: 0o755 });
    chmodSync(join(home, 'sessions'), 0o755);
    store.save(record());
    expect(mode(store.dir)).toBe(0o700);
  });

  it('replaces a file atomically: a new file renamed over the old, no temporary file left behind', () => {
    store.save(record());
    const before = statSync(store.path(ID)).ino;
    store.save(record(ID, { access_token: 'at-2', refresh_token: 'rt-2' }));
    expect(statSync(store.path(ID)).ino).not.toBe(before);
    expect(store.load(ID)).toMatchObject({ access_token: 'at-2', refresh_token: 'rt-2' });
    expect(mode(store.path(ID))).toBe(0o600);
    expect(readdirSync(store.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses a session file that group or others can read: it holds a private key', () => {
    store.save(record());
    chmodSync(store.path(ID), 0o644);
    expect(() => store.load(ID)).toThrow(/readable by others/);
  });

  it('refuses a file that is not a session, or that holds another session', () => {
    store.save(record());
    writeFileSync(store.path(ID), '{"broker": "x"}', { mode: 0o600 });
    expect(() => store.load(ID)).toThrow(/not a Tether session file/);
    writeFileSync(store.path(ID), JSON.stringify(record(OTHER)), { mode: 0o600 });
    expect(() => store.load(ID)).toThrow(/holds session/);
  });

  it('answers no_session for a session it does not hold', () => {
    expect(() => store.load(ID)).toThrow(expect.objectContaining({ code: 'no_session' }));
  });

  it.each(['../identity', 'ses_../../x', '/etc/passwd', 'ses_ABC', ''])(
    'never turns %j into a path',
    (id) => {
      expect(() => store.path(id)).toThrow(CliError);
      expect(store.has(id)).toBe(false);
    },
  );

  it('keeps a current pointer, which ignores a session whose file is gone', () => {
    expect(store.current()).toBeUndefined();
    store.save(record());
    store.setCurrent(ID);
    expect(store.current()).toBe(ID);
    expect(mode(join(store.dir, 'current'))).toBe(0o600);
    rmSync(store.path(ID));
    expect(store.current()).toBeUndefined();
  });

  it('removing a session deletes its key file and clears the pointer that named it', () => {
    store.save(record());
    store.save(record(OTHER));
    store.setCurrent(ID);
    expect(store.remove(ID)).toBe(true);
    expect(existsSync(store.path(ID))).toBe(false);
    expect(existsSync(join(store.dir, 'current'))).toBe(false);
    expect(store.remove(ID)).toBe(false);
    expect(store.ids()).toEqual([OTHER]);
  });

  it('removing another session leaves the current one alone', () => {
    store.save(record());
    store.save(record(OTHER));
    store.setCurrent(ID);
    store.remove(OTHER);
    expect(store.current()).toBe(ID);
  });

  it('prunes the files of sessions past their hard expiry, and only those', () => {
    store.save(record(ID, { hard_expires_at: new Date(Date.now() - 1000).toISOString() }));
    store.save(record(OTHER));
    expect(store.pruneExpired(Date.now())).toEqual([ID]);
    expect(store.ids()).toEqual([OTHER]);
  });

  it('runs one locked section at a time for a session', async () => {
    // A clock that moves only when a waiter sleeps, and sleeps that end when the test says:
    // the second section is seen waiting on the lock, not merely not yet run after some time.
    let now = Date.now();
    const waiting: (() => void)[] = [];
    const locked = new SessionStore(home, {
      now: () => now,
      sleep: (ms) =>
        new Promise<void>((resolve) => {
          now += ms;
          waiting.push(resolve);
        }),
    });
    locked.save(record());
    const order: string[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const first = locked.withLock(ID, async () => {
      order.push('first in');
      await gate;
      order.push('first out');
    });
    const second = locked.withLock(ID, async () => {
      order.push('second in');
    });
    await vi.waitFor(() => expect(waiting).toHaveLength(1));
    // Polling again while the lock is held: still waiting.
    waiting.shift()?.();
    await vi.waitFor(() => expect(waiting).toHaveLength(1));
    expect(order).toEqual(['first in']);
    release();
    await first;
    waiting.shift()?.();
    await second;
    expect(order).toEqual(['first in', 'first out', 'second in']);
    expect(existsSync(`${locked.path(ID)}.lock`)).toBe(false);
  });

  it('gives up on a lock held past the wait, naming it', async () => {
    let now = Date.now();
    const locked = new SessionStore(home, {
      now: () => now,
      sleep: async (ms) => {
        now += ms;
      },
    });
    locked.save(record());
    writeFileSync(`${locked.path(ID)}.lock`, '');
    await expect(locked.withLock(ID, async () => 'never')).rejects.toMatchObject({ code: 'session_busy' });
  });

  it('releases the lock when the locked work fails', async () => {
    store.save(record());
    await expect(store.withLock(ID, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await store.withLock(ID, async () => 'again')).toBe('again');
  });

  it('takes over a lock left behind by a crashed process', async () => {
    store.save(record());
    const lock = `${store.path(ID)}.lock`;
    writeFileSync(lock, '');
    const old = (Date.now() - 120_000) / 1000;
    utimesSync(lock, old, old);
    expect(await store.withLock(ID, async () => readFileSync(store.path(ID), 'utf8').length > 0)).toBe(true);
  });
});
