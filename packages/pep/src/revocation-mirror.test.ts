import { StatusList, TOKEN_STATUS } from '@tether-broker/protocol';
import { describe, expect, it } from 'vitest';
import { RevocationMirror } from './revocation-mirror.js';

const token = { sid: 'ses_1', kid: 'k1', iat: 1000 };

describe('RevocationMirror', () => {
  it('refuses a token of an ended session, with the reason, and nothing else', () => {
    const mirror = new RevocationMirror();
    expect(mirror.check(token)).toBeUndefined();
    mirror.apply(1, {
      type: 'session_ended',
      data: { sid: 'ses_1', reason: 'ticket_closed', session_exp: 5000 },
    });
    expect(mirror.check(token)).toEqual({ kind: 'session_ended', reason: 'ticket_closed' });
    expect(mirror.check({ ...token, sid: 'ses_2' })).toBeUndefined();
    expect(mirror.position).toBe(1);
  });

  it('refuses tokens signed by a retired key and tokens issued before a cut-off', () => {
    const mirror = new RevocationMirror();
    mirror.apply(1, { type: 'key_retired', data: { kid: 'k1' } });
    expect(mirror.check(token)).toEqual({ kind: 'key_retired' });
    expect(mirror.check({ ...token, kid: 'k2' })).toBeUndefined();
    mirror.apply(2, { type: 'tenant_cutoff', data: { before: 2000 } });
    expect(mirror.check({ ...token, kid: 'k2', iat: 1999 })).toEqual({ kind: 'tenant_cutoff' });
    expect(mirror.check({ ...token, kid: 'k2', iat: 2000 })).toBeUndefined();
    // An older cut-off never moves the line back.
    mirror.apply(3, { type: 'tenant_cutoff', data: { before: 1500 } });
    expect(mirror.check({ ...token, kid: 'k2', iat: 1999 })).toEqual({ kind: 'tenant_cutoff' });
  });

  it('is fresh only within the budget of its last confirmation, which never moves back', () => {
    const mirror = new RevocationMirror();
    expect(mirror.isFresh(10_000, 10_000)).toBe(false); // never confirmed
    mirror.confirmFresh(10_000);
    expect(mirror.isFresh(20_000, 10_000)).toBe(true);
    expect(mirror.isFresh(20_001, 10_000)).toBe(false);
    mirror.confirmFresh(5_000); // an older confirmation (replayed heartbeat) changes nothing
    expect(mirror.freshAt).toBe(10_000);
  });

  it("refuses a narrowed session's tokens issued before the change, and accepts later ones", () => {
    const mirror = new RevocationMirror();
    mirror.apply(1, { type: 'session_narrowed', data: { sid: 'ses_1', before: 1001, session_exp: 5000 } });
    expect(mirror.check({ ...token, iat: 1000 })).toEqual({ kind: 'session_narrowed' });
    expect(mirror.check({ ...token, iat: 1001 })).toBeUndefined();
    expect(mirror.check({ ...token, sid: 'ses_2', iat: 1000 })).toBeUndefined();
    // A second narrowing moves the line forward, never back.
    mirror.apply(2, { type: 'session_narrowed', data: { sid: 'ses_1', before: 1200, session_exp: 5000 } });
    mirror.apply(3, { type: 'session_narrowed', data: { sid: 'ses_1', before: 1100, session_exp: 5000 } });
    expect(mirror.check({ ...token, iat: 1150 })).toEqual({ kind: 'session_narrowed' });
    expect(mirror.prune(5005, 5)).toBe(1);
    expect(mirror.check({ ...token, iat: 1150 })).toBeUndefined();
  });

  it('forgets ended sessions only once their hard expiry (plus leeway) has passed', () => {
    const mirror = new RevocationMirror();
    mirror.apply(1, { type: 'session_ended', data: { sid: 'ses_1', reason: 'revoked', session_exp: 5000 } });
    expect(mirror.prune(5004, 5)).toBe(0);
    expect(mirror.check(token)).toBeDefined();
    expect(mirror.prune(5005, 5)).toBe(1);
    expect(mirror.endedSessions).toBe(0);
  });

  describe('a snapshot of status lists', () => {
    const uri = 'https://broker.example/v1/status-lists/4';
    function withSnapshot(before: number, flagged: number[]) {
      const list = new StatusList(64, 1);
      for (const idx of flagged) list.set(idx, TOKEN_STATUS.INVALID);
      const mirror = new RevocationMirror();
      mirror.applySnapshot(900, {
        ended: [],
        retiredKids: [],
        statusLists: new Map([[uri, list]]),
        statusBefore: before,
      });
      return mirror;
    }

    it('refuses a token issued before the snapshot whose entry reads INVALID', () => {
      const mirror = withSnapshot(2000, [5]);
      expect(mirror.check({ ...token, iat: 1999, status: { uri, idx: 5 } })).toEqual({
        kind: 'session_ended',
        reason: 'ended',
      });
      expect(mirror.check({ ...token, iat: 1999, status: { uri, idx: 6 } })).toBeUndefined();
      expect(mirror.position).toBe(900);
    });

    it('does not refuse a later session that reuses the slot, another list, or an index outside the list', () => {
      const mirror = withSnapshot(2000, [5]);
      // A slot is reused only after the ended session's hard expiry: a token issued at or
      // after the snapshot's line that names it belongs to the new holder.
      expect(mirror.check({ ...token, iat: 2000, status: { uri, idx: 5 } })).toBeUndefined();
      expect(mirror.check({ ...token, iat: 1000, status: { uri: `${uri}0`, idx: 5 } })).toBeUndefined();
      expect(mirror.check({ ...token, iat: 1000, status: { uri, idx: 64 } })).toBeUndefined();
    });

    it('takes narrowings and the cut-off from the snapshot, and a later snapshot replaces the lists', () => {
      const mirror = withSnapshot(2000, [5]);
      mirror.applySnapshot(950, {
        ended: [{ sid: 'ses_9', reason: 'revoked', session_exp: 9000 }],
        narrowed: [{ sid: 'ses_1', before: 1500, session_exp: 9000 }],
        cutoff: 800,
        retiredKids: [],
        statusLists: new Map(),
        statusBefore: 3000,
      });
      expect(mirror.check({ ...token, iat: 1499 })).toEqual({ kind: 'session_narrowed' });
      expect(mirror.check({ ...token, sid: 'ses_2', iat: 799 })).toEqual({ kind: 'tenant_cutoff' });
      expect(mirror.check({ ...token, sid: 'ses_9' })).toEqual({ kind: 'session_ended', reason: 'revoked' });
      expect(mirror.check({ ...token, sid: 'ses_2', iat: 1999, status: { uri, idx: 5 } })).toBeUndefined();
      expect(mirror.position).toBe(950);
    });
  });
});
