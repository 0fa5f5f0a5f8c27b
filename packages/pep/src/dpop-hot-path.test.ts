import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { createDpopProofVerifier, DpopError, dpopAth, verifyDpopProof } from './dpop.js';
import { normalizeHtu, normalizeHtuCached } from './htu.js';
import { ReplayCache } from './replay-cache.js';

// What the per-request shortcuts (checked-header cache, htu memo, precomputed ath, replay keys)
// must not change: every proof still gets every check.

const NOW = Date.UTC(2026, 0, 1);
const URL_ = 'https://api.example.com/v1/x';

let key: { privateKey: CryptoKey; publicJwk: JWK };

beforeAll(async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  key = { privateKey, publicJwk: await exportJWK(publicKey) };
});

function proof(claims: Record<string, unknown> = {}): Promise<string> {
  const payload = { jti: randomUUID(), htm: 'GET', htu: URL_, iat: NOW / 1000, ...claims };
  return new SignJWT(payload as JWTPayload)
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk })
    .sign(key.privateKey);
}

const options = (extra: Record<string, unknown> = {}) => ({
  now: () => NOW,
  replayCache: new ReplayCache({ maxEntries: 100, now: () => NOW }),
  ...extra,
});

async function refusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DpopError);
  return (error as DpopError).description;
}

describe('a header checked before (cached)', () => {
  it('is still held to the allow-list of the verifier that sees it now', async () => {
    await verifyDpopProof(await proof(), { method: 'GET', url: URL_ }, options());
    const description = await refusal(
      verifyDpopProof(await proof(), { method: 'GET', url: URL_ }, options({ algorithms: ['EdDSA'] })),
    );
    expect(description).toBe('the alg header is not an accepted asymmetric algorithm');
  });

  it('still gets the signature checked', async () => {
    const verify = createDpopProofVerifier(options());
    await verify(await proof(), { method: 'GET', url: URL_ });
    const [header, , signature] = (await proof()).split('.');
    const forged = `${header}.${(await proof({ htm: 'POST' })).split('.')[1]}.${signature}`;
    expect(await refusal(verify(forged, { method: 'POST', url: URL_ }))).toContain('signature');
  });

  it('answers a frozen jwk, shared by the proofs of one key', async () => {
    const verify = createDpopProofVerifier(options());
    const a = await verify(await proof(), { method: 'GET', url: URL_ });
    const b = await verify(await proof(), { method: 'GET', url: URL_ });
    expect(a.publicJwk).toEqual(key.publicJwk);
    expect(Object.isFrozen(a.publicJwk)).toBe(true);
    expect(b.publicJwk).toBe(a.publicJwk);
  });
});

describe('createDpopProofVerifier', () => {
  it('refuses bad options at creation, as a programming error', () => {
    expect(() => createDpopProofVerifier(options({ iatWindowSeconds: 0 }))).toThrow(TypeError);
    expect(() => createDpopProofVerifier(options({ algorithms: ['HS256'] }))).toThrow(TypeError);
  });

  it('reads the clock on every proof', async () => {
    const clock = { now: NOW };
    const verify = createDpopProofVerifier({
      now: () => clock.now,
      replayCache: new ReplayCache({ maxEntries: 10, now: () => clock.now }),
    });
    const p = await proof();
    clock.now += 61_000;
    expect(await refusal(verify(p, { method: 'GET', url: URL_ }))).toContain('in the past');
  });
});

describe('ath', () => {
  it('is compared with the hash the caller computed, when given', async () => {
    const verify = createDpopProofVerifier(options());
    const ath = await dpopAth('token-a');
    const request = { method: 'GET', url: URL_, accessToken: 'token-a' };
    await expect(verify(await proof({ ath }), { ...request, accessTokenHash: ath })).resolves.toBeDefined();
    expect(await refusal(verify(await proof({ ath }), { ...request, accessTokenHash: 'x' }))).toBe(
      'claim ath does not match the access token',
    );
  });
});

describe('single use with long and short jti values', () => {
  it.each([
    ['a UUID', randomUUID()],
    ['a 200-character jti (kept as a digest)', 'j'.repeat(200)],
  ])('refuses %s the second time', async (_name, jti) => {
    const verify = createDpopProofVerifier(options());
    await verify(await proof({ jti }), { method: 'GET', url: URL_ });
    expect(await refusal(verify(await proof({ jti }), { method: 'GET', url: URL_ }))).toContain(
      'already been used',
    );
  });
});

describe('normalizeHtuCached', () => {
  it.each([
    'HTTPS://API.example.com:443/v1/%7ex?y',
    'https://user@api.example.com/',
    'not a url',
    'https://api.example.com/a/../b',
  ])('answers what normalizeHtu does for %s, first and second time', (uri) => {
    expect(normalizeHtuCached(uri)).toBe(normalizeHtu(uri));
    expect(normalizeHtuCached(uri)).toBe(normalizeHtu(uri));
  });

  it('stays correct past its bound', () => {
    for (let i = 0; i < 3000; i++) {
      expect(normalizeHtuCached(`https://Host.example/p${i}`)).toBe(`https://host.example/p${i}`);
    }
    expect(normalizeHtuCached('https://Host.example/p0')).toBe('https://host.example/p0');
  });
});
