import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionView } from '@tether-broker/protocol/api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionStore, type StoredSession } from '../session-store.js';
import { syncStoredExpiry } from './session-extend.js';

const ID = 'ses_0123456789abcdefghjkmnpqrs';

function stored(hardExpiresAt: string): StoredSession {
  return {
    broker: 'http://127.0.0.1:8700',
    tenant: 'ten_1',
    principal: 'prn_1',
    session: ID,
    request: 'req_1',
    privilege: 'prv_1',
    audiences: ['http://127.0.0.1:8701'],
    hard_expires_at: hardExpiresAt,
    key: { kty: 'OKP', crv: 'Ed25519', x: 'public', d: 'private' },
    access_token: 'at-1',
    refresh_token: 'rt-1',
    expires_at: new Date(Date.now() + 300_000).toISOString(),
  };
}

const view = (state: string, hardExpiresAt: string) =>
  ({ id: ID, state, hard_expires_at: hardExpiresAt }) as SessionView;

describe("keeping the local copy of an extended session's hard expiry", () => {
  let home: string;
  let store: SessionStore;
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'tether-extend-'));
    store = new SessionStore(home);
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  it('takes the broker’s new hard expiry, so the key is not pruned at the old one', async () => {
    const old = new Date(Date.now() + 60_000).toISOString();
    const extended = new Date(Date.now() + 3_660_000).toISOString();
    store.save(stored(old));
    await syncStoredExpiry(store, view('active', extended));
    expect(store.load(ID)).toMatchObject({ hard_expires_at: extended, refresh_token: 'rt-1' });
    expect(store.pruneExpired(Date.now() + 120_000)).toEqual([]);
    expect(store.has(ID)).toBe(true);
  });

  it('leaves ended sessions and sessions without a local key alone', async () => {
    const old = new Date(Date.now() + 60_000).toISOString();
    store.save(stored(old));
    await syncStoredExpiry(store, view('ended', new Date(Date.now() + 3_660_000).toISOString()));
    expect(store.load(ID).hard_expires_at).toBe(old);
    store.remove(ID);
    await syncStoredExpiry(store, view('active', old));
    expect(store.has(ID)).toBe(false);
  });
});
