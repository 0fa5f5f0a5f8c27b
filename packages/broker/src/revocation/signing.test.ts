import { localKeySource, RevocationFeedVerifier } from '@tether-broker/pep';
import {
  type CryptoKey,
  calculateJwkThumbprint,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  SignJWT,
} from 'jose';
import { describe, expect, it, vi } from 'vitest';
import type { ActiveSigningKey } from '../tokens/keys.js';
import type { RevocationLogEntry } from './log.js';
import { RevocationSigner, signHeartbeat, signRevocationEvent, signSnapshot } from './signing.js';
import type { RevocationSnapshot } from './snapshot.js';

const ISSUER = 'https://broker.example';
const AT = Date.UTC(2026, 0, 5, 10, 0, 0) + 789;

async function signingKey(): Promise<ActiveSigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, privateKey: privateKey as CryptoKey, publicJwk: { ...publicJwk, kid } };
}

const entry = (seq: number): RevocationLogEntry => ({
  tenantId: 'ten_acme',
  seq,
  at: AT,
  event: {
    type: 'session_ended',
    data: { sid: `ses_${seq}`, reason: 'revoked', session_exp: 1_800_000_000 },
  },
});

describe('revocation signing', () => {
  it('signs an event as tether-event+jwt with the claims the PEP expects', async () => {
    const key = await signingKey();
    const jws = await signRevocationEvent(key, ISSUER, entry(3));
    expect(decodeProtectedHeader(jws)).toEqual({ alg: 'EdDSA', typ: 'tether-event+jwt', kid: key.kid });
    expect(decodeJwt(jws)).toEqual({
      iss: ISSUER,
      tenant: 'ten_acme',
      seq: 3,
      type: 'session_ended',
      data: { sid: 'ses_3', reason: 'revoked', session_exp: 1_800_000_000 },
      iat: Math.floor(AT / 1000),
    });
    // The same event and key always give the same JWS, whenever it is replayed.
    expect(await signRevocationEvent(key, ISSUER, entry(3))).toBe(jws);

    const feed = new RevocationFeedVerifier({
      keys: await localKeySource({ keys: [key.publicJwk] }),
      issuer: ISSUER,
      tenant: 'ten_acme',
      now: () => AT,
      position: 2,
    });
    expect((await feed.verifyEvent(jws)).event).toEqual(entry(3).event);
  });

  it('signs a heartbeat as tether-heartbeat+jwt carrying the head', async () => {
    const key = await signingKey();
    const jws = await signHeartbeat(key, ISSUER, { tenantId: 'ten_acme', seq: 9, at: AT });
    expect(decodeProtectedHeader(jws)).toEqual({ alg: 'EdDSA', typ: 'tether-heartbeat+jwt', kid: key.kid });
    expect(decodeJwt(jws)).toEqual({ iss: ISSUER, tenant: 'ten_acme', seq: 9, iat: AT / 1000 }); // millisecond precision: freshness is counted from it
  });

  it('signs each event once per key, and with the current key', async () => {
    const keys = [await signingKey(), await signingKey()];
    let current = keys[0]!;
    const signer = new RevocationSigner(() => current, ISSUER, { maxEntries: 2 });
    const first = await signer.event(entry(1));
    expect(await signer.event(entry(1))).toBe(first);
    current = keys[1]!;
    const rotated = await signer.event(entry(1));
    expect(decodeProtectedHeader(rotated).kid).toBe(keys[1]!.kid);
    // Bounded: older signatures are dropped, and recomputed when asked for again.
    await signer.event(entry(2));
    await signer.event(entry(3));
    expect(await signer.event(entry(1))).toBe(rotated);
    expect(decodeProtectedHeader((await signer.heartbeat('ten_acme', 3, AT)).jws).kid).toBe(keys[1]!.kid);
  });

  it('signs an event once for all the streams that ask for it at once, and gives each the same bytes', async () => {
    const key = await signingKey();
    const signer = new RevocationSigner(() => key, ISSUER);
    const sign = vi.spyOn(SignJWT.prototype, 'sign');
    try {
      // 200 streams woken by one commit ask in the same tick, before any signature completes.
      const sent = await Promise.all(Array.from({ length: 200 }, () => signer.event(entry(5))));
      expect(new Set(sent).size).toBe(1);
      expect(sign).toHaveBeenCalledTimes(1);
      // So do heartbeats of streams at the same position.
      const beats = await Promise.all(Array.from({ length: 50 }, () => signer.heartbeat('ten_acme', 5, AT)));
      expect(new Set(beats.map((b) => b.jws)).size).toBe(1);
      expect(sign).toHaveBeenCalledTimes(2);
    } finally {
      sign.mockRestore();
    }
  });

  it('does not keep a failed signature: the next stream to ask signs again', async () => {
    const key = await signingKey();
    const signer = new RevocationSigner(() => key, ISSUER);
    const sign = vi.spyOn(SignJWT.prototype, 'sign').mockRejectedValueOnce(new Error('HSM unavailable'));
    try {
      await expect(signer.event(entry(6))).rejects.toThrow('HSM unavailable');
      await expect(signer.heartbeat('ten_acme', 6, AT)).resolves.toMatchObject({ at: AT });
      expect(decodeJwt(await signer.event(entry(6)))).toMatchObject({ seq: 6 });
    } finally {
      sign.mockRestore();
    }
  });

  it('shares a heartbeat among streams at the same position, never one older than a stream already sent', async () => {
    const key = await signingKey();
    const shared = new RevocationSigner(() => key, ISSUER, { maxEntries: 16, heartbeatShareMs: 250 });
    const first = await shared.heartbeat('ten_acme', 7, AT);
    // Another stream at position 7 whose read started 200 ms later: the same signature.
    expect(await shared.heartbeat('ten_acme', 7, AT + 200)).toEqual(first);
    // 300 ms later, another position, another tenant, or a stream whose last heartbeat is this one: signed anew.
    for (const [tenant, seq, at, after] of [
      ['ten_acme', 7, AT + 300, undefined],
      ['ten_acme', 8, AT + 100, undefined],
      ['ten_other', 7, AT, undefined],
      ['ten_acme', 7, AT + 350, AT + 300],
    ] as const) {
      const beat = await shared.heartbeat(tenant, seq, at, after);
      expect(beat.jws).not.toBe(first.jws);
      expect(beat.at).toBe(at);
      expect(decodeJwt(beat.jws)).toMatchObject({ tenant, seq, iat: at / 1000 });
    }
  });

  it('keeps a snapshot of 100,000 ended sessions small: status-list bits, not one entry per session', async () => {
    const key = await signingKey();
    const snapshotOf = (ended: number): RevocationSnapshot => {
      // Slots as the broker hands them out: random, in lists of 65,536 filled to half.
      const lists = Math.ceil(ended / 32_768);
      return {
        tenantId: 'ten_acme',
        seq: ended,
        at: AT,
        statusBefore: Math.floor(AT / 1000) - 10,
        statusLists: Array.from({ length: lists }, (_, l) => {
          const flagged = new Set<number>();
          const count = Math.min(32_768, ended - l * 32_768);
          while (flagged.size < count) flagged.add(Math.floor(Math.random() * 65_536));
          return {
            listId: l + 1,
            bits: 1,
            size: 65_536,
            flagged: [...flagged].map((idx) => ({ idx, status: 1 })),
          };
        }),
        ended: [],
        narrowed: [],
        cutoff: 0,
        retiredKids: [],
      };
    };
    const large = await signSnapshot(key, ISSUER, snapshotOf(100_000));
    const small = await signSnapshot(key, ISSUER, snapshotOf(10_000));
    // About 15 KB per list of 65,536 slots, whatever is flagged in it: ~0.6 bytes per session.
    expect(large.length).toBeLessThan(64 * 1024);
    expect(large.length / small.length).toBeLessThan(5);
    const verifier = new RevocationFeedVerifier({
      keys: await localKeySource({ keys: [key.publicJwk] }),
      issuer: ISSUER,
      tenant: 'ten_acme',
      now: () => AT,
    });
    const read = await verifier.verifySnapshot(large);
    const flagged = [...read.statusLists.values()].reduce((n, list) => {
      let ones = 0;
      for (let i = 0; i < list.size; i++) ones += list.get(i);
      return n + ones;
    }, 0);
    expect(flagged).toBe(100_000);
  });
});
