import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it, vi } from 'vitest';
import type { ActiveSigningKey } from '../tokens/keys.js';
import { SharedEventFrames } from './event-frames.js';
import type { RevocationLogEntry } from './log.js';
import { RevocationSigner } from './signing.js';

async function signingKey(): Promise<ActiveSigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, privateKey: privateKey as CryptoKey, publicJwk: { ...publicJwk, kid } };
}

const entry = (seq: number): RevocationLogEntry => ({
  tenantId: 'ten_acme',
  seq,
  at: Date.UTC(2026, 0, 5),
  event: {
    type: 'session_ended',
    data: { sid: `ses_${seq}`, reason: 'revoked', session_exp: 1_800_000_000 },
  },
});

describe('SharedEventFrames', () => {
  it('signs and frames an event once for every stream, and re-frames it after a key rotation', async () => {
    const keys = [await signingKey(), await signingKey()];
    let current = keys[0]!;
    const frames = new SharedEventFrames(new RevocationSigner(() => current, 'https://broker.example'));
    const sign = vi.spyOn(SignJWT.prototype, 'sign');
    try {
      const sent = await Promise.all(Array.from({ length: 200 }, () => frames.get(entry(9))));
      expect(new Set(sent).size).toBe(1);
      expect(sign).toHaveBeenCalledTimes(1);
      expect(sent[0]!.toString()).toMatch(/^id: 9\nevent: revocation\ndata: [\w-]+\.[\w-]+\.[\w-]+\n\n$/);
      current = keys[1]!;
      const rotated = await frames.get(entry(9));
      expect(rotated).not.toBe(sent[0]);
      expect(sign).toHaveBeenCalledTimes(2);
    } finally {
      sign.mockRestore();
    }
  });
});
