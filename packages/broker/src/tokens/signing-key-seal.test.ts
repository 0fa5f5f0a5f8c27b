import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { type Kek, openSecret, sealSecret } from '../config/key-encryption.js';
import { bindingOf, openSigningKey, SEAL_BOUND, SEAL_LEGACY } from './signing-key-seal.js';

const kek: Kek = { key: new Uint8Array(randomBytes(32)), id: 'test-kek' };

async function keyPair() {
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  const pub = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(pub);
  return {
    kid,
    publicJwk: { ...pub, kid, alg: 'EdDSA', use: 'sig' } as JWK,
    privateText: JSON.stringify(await exportJWK(privateKey)),
  };
}

/** A row as the broker writes it. */
async function genuineRow() {
  const k = await keyPair();
  return {
    kid: k.kid,
    alg: 'EdDSA',
    public_jwk: JSON.stringify(k.publicJwk),
    private_jwk_enc: await sealSecret(kek, k.privateText, bindingOf(k.kid, k.kid)),
    seal_version: SEAL_BOUND,
  };
}

describe('sealSecret / openSecret with a binding', () => {
  it('opens only with exactly the facts it was sealed with', async () => {
    const sealed = await sealSecret(kek, 'secret', { a: '1', b: '2' });
    expect(await openSecret(kek, sealed, { a: '1', b: '2' })).toBe('secret');
    const others: (Record<string, string> | undefined)[] = [
      { a: '1', b: '3' },
      { a: '1' },
      { a: '1', b: '2', c: '3' },
      undefined,
    ];
    for (const other of others)
      await expect(openSecret(kek, sealed, other)).rejects.toMatchObject({ code: 'store_unavailable' });
  });

  it('does not let a secret sealed without a binding pass for a bound one', async () => {
    const sealed = await sealSecret(kek, 'secret');
    expect(await openSecret(kek, sealed)).toBe('secret');
    await expect(openSecret(kek, sealed, { a: '1' })).rejects.toMatchObject({ code: 'store_unavailable' });
  });
});

describe('openSigningKey', () => {
  it('opens a genuine row', async () => {
    const row = await genuineRow();
    const opened = await openSigningKey(kek, row);
    expect(opened.publicJwk.kid).toBe(row.kid);
  });

  it.each([
    [
      'an RSA-looking public key',
      async () => ({ ...(await genuineRow()), public_jwk: '{"kty":"RSA","n":"x","e":"AQAB"}' }),
      'public_key_invalid',
    ],
    [
      'a private JWK as the public key',
      async () => {
        const row = await genuineRow();
        return { ...row, public_jwk: JSON.stringify({ ...JSON.parse(row.public_jwk), d: 'AAAA' }) };
      },
      'public_key_invalid',
    ],
    ['another alg', async () => ({ ...(await genuineRow()), alg: 'ES256' }), 'public_key_invalid'],
    [
      'a kid that is not the thumbprint',
      async () => ({ ...(await genuineRow()), kid: 'chosen-kid' }),
      'kid_mismatch',
    ],
    [
      'another public key under the same kid',
      async () => {
        const row = await genuineRow();
        const other = await keyPair();
        return { ...row, public_jwk: JSON.stringify({ ...other.publicJwk, kid: row.kid }) };
      },
      'kid_mismatch',
    ],
    [
      "another row's sealed key",
      async () => ({ ...(await genuineRow()), private_jwk_enc: (await genuineRow()).private_jwk_enc }),
      'seal_does_not_open',
    ],
    [
      'garbage',
      async () => ({ ...(await genuineRow()), private_jwk_enc: 'a.b.c.d.e' }),
      'seal_does_not_open',
    ],
    [
      'a seal under another KEK',
      async () => {
        const k = await keyPair();
        const otherKek: Kek = { key: new Uint8Array(randomBytes(32)), id: 'other' };
        return {
          kid: k.kid,
          alg: 'EdDSA',
          public_jwk: JSON.stringify(k.publicJwk),
          private_jwk_enc: await sealSecret(otherKek, k.privateText, bindingOf(k.kid, k.kid)),
          seal_version: SEAL_BOUND,
        };
      },
      'seal_does_not_open',
    ],
    [
      'a legacy seal outside the start-up re-seal',
      async () => ({ ...(await genuineRow()), seal_version: SEAL_LEGACY }),
      'legacy_seal',
    ],
    ['an unknown seal version', async () => ({ ...(await genuineRow()), seal_version: 7 }), 'legacy_seal'],
    [
      'a bound seal holding another private key (only a KEK holder could make it)',
      async () => {
        const k = await keyPair();
        const other = await keyPair();
        return {
          kid: k.kid,
          alg: 'EdDSA',
          public_jwk: JSON.stringify(k.publicJwk),
          private_jwk_enc: await sealSecret(kek, other.privateText, bindingOf(k.kid, k.kid)),
          seal_version: SEAL_BOUND,
        };
      },
      'private_key_mismatch',
    ],
  ])('rejects %s', async (_name, row, reason) => {
    await expect(openSigningKey(kek, await row())).rejects.toMatchObject({ reason });
  });

  it('opens a legacy seal only when allowed (the re-seal at start), after the same checks', async () => {
    const k = await keyPair();
    const row = {
      kid: k.kid,
      alg: 'EdDSA',
      public_jwk: JSON.stringify(k.publicJwk),
      private_jwk_enc: await sealSecret(kek, k.privateText),
      seal_version: SEAL_LEGACY,
    };
    expect((await openSigningKey(kek, row, true)).privateJwkText).toBe(k.privateText);
    const other = await keyPair();
    await expect(
      openSigningKey(kek, { ...row, private_jwk_enc: await sealSecret(kek, other.privateText) }, true),
    ).rejects.toMatchObject({ reason: 'private_key_mismatch' });
  });
});
