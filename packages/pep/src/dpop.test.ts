import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  base64url,
  type CryptoKey,
  calculateJwkThumbprint,
  decodeJwt,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DPOP_DEFAULTS,
  DpopError,
  type DpopErrorCode,
  type DpopRequest,
  type DpopVerifierOptions,
  dpopAth,
  verifyDpopProof,
} from './dpop.js';
import { ReplayCache } from './replay-cache.js';

interface RfcVectors {
  proofs: {
    compact: string;
    payload: { jti: string; htm: string; htu: string; iat: number; ath?: string };
  }[];
  access_token: string;
  expected_ath: string;
  proof_jwk: JWK;
  expected_jkt: string;
  cnf_access_token_example: { compact: string };
}

// Copied from shared/vectors/dpop-rfc9449.json; its `source` block names the RFC 9449 text.
const vectors = JSON.parse(
  readFileSync(new URL('../test-fixtures/dpop-rfc9449.json', import.meta.url), 'utf8'),
) as RfcVectors;

const NOW = 1_700_000_000_000;
const NOW_S = NOW / 1000;
const METHOD = 'POST';
const REQUEST_URL = 'https://api.example.com/v1/things';
// RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E (no '"' or '\').
const ERROR_DESCRIPTION_CHARSET = /^[\x20\x21\x23-\x5B\x5D-\x7E]+$/;

interface Signer {
  alg: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  privateJwk: JWK;
}

async function signer(alg: string): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return {
    alg,
    privateKey,
    publicKey,
    publicJwk: await exportJWK(publicKey),
    privateJwk: await exportJWK(privateKey),
  };
}

/** A fresh proof for POST REQUEST_URL at NOW; `undefined` in claims or header removes that member. */
async function proof(
  by: Signer,
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  const payload = { jti: randomUUID(), htm: METHOD, htu: REQUEST_URL, iat: NOW_S, ...claims };
  return new SignJWT(payload as JWTPayload)
    .setProtectedHeader({ alg: by.alg, typ: 'dpop+jwt', jwk: by.publicJwk, ...header })
    .sign(by.privateKey);
}

const encodeJson = (value: unknown) => base64url.encode(JSON.stringify(value));

function unsigned(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return `${encodeJson(header)}.${encodeJson(payload)}.`;
}

function withPayload(compact: string, payload: Record<string, unknown>): string {
  const [header, , signature] = compact.split('.');
  return `${header}.${encodeJson(payload)}.${signature}`;
}

function setUp(maxEntries = 1_000) {
  const clock = { now: NOW };
  const replayCache = new ReplayCache({ maxEntries, now: () => clock.now });
  const verify = (
    header: string | string[] | undefined,
    request: Partial<DpopRequest> = {},
    options: Partial<DpopVerifierOptions> = {},
  ) =>
    verifyDpopProof(
      header,
      { method: METHOD, url: REQUEST_URL, ...request },
      { now: () => clock.now, replayCache, ...options },
    );
  return { clock, replayCache, verify };
}

async function refusal(promise: Promise<unknown>): Promise<DpopError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the proof was accepted').toBeInstanceOf(DpopError);
  return error as DpopError;
}

let ed: Signer;
let ed25519: Signer;
let es: Signer;
let other: Signer;
let rsa: Signer;

beforeAll(async () => {
  [ed, ed25519, es, other, rsa] = await Promise.all([
    signer('EdDSA'),
    signer('Ed25519'),
    signer('ES256'),
    signer('ES256'),
    signer('PS256'),
  ]);
});

describe('RFC 9449 example proofs', () => {
  const rfcRequest = (p: RfcVectors['proofs'][number]) => ({ method: p.payload.htm, url: p.payload.htu });

  it.each(vectors.proofs.map((p, i) => [i + 1, p] as const))(
    'proof %i verifies at a clock set to its iat',
    async (_n, p) => {
      const { clock, verify } = setUp();
      clock.now = p.payload.iat * 1000;
      const verified = await verify(p.compact, rfcRequest(p));
      expect(verified).toMatchObject({
        jkt: vectors.expected_jkt,
        jti: p.payload.jti,
        iat: p.payload.iat,
        htm: p.payload.htm,
        htu: p.payload.htu,
        publicJwk: vectors.proof_jwk,
      });
    },
  );

  it.each(vectors.proofs.map((p, i) => [i + 1, p] as const))(
    'proof %i is refused as stale with the real clock',
    async (_n, p) => {
      const error = await refusal(
        verifyDpopProof(p.compact, rfcRequest(p), {
          now: Date.now,
          replayCache: new ReplayCache({ maxEntries: 10, now: Date.now }),
        }),
      );
      expect(error.code).toBe('invalid_dpop_proof');
      expect(error.description).toContain('in the past');
    },
  );

  it('computes the example ath for the example access token', async () => {
    expect(await dpopAth(vectors.access_token)).toBe(vectors.expected_ath);
    expect(vectors.proofs[2]!.payload.ath).toBe(vectors.expected_ath);
  });

  it("accepts the resource request proof with the example token and the example token's cnf.jkt", async () => {
    const p = vectors.proofs[2]!;
    const cnf = decodeJwt(vectors.cnf_access_token_example.compact).cnf as { jkt: string };
    const { clock, verify } = setUp();
    clock.now = p.payload.iat * 1000;
    const verified = await verify(p.compact, {
      ...rfcRequest(p),
      accessToken: vectors.access_token,
      expectedJkt: cnf.jkt,
    });
    expect(verified.jkt).toBe(cnf.jkt);
  });

  it('refuses the resource request proof for another access token', async () => {
    const p = vectors.proofs[2]!;
    const { clock, verify } = setUp();
    clock.now = p.payload.iat * 1000;
    const error = await refusal(
      verify(p.compact, { ...rfcRequest(p), accessToken: `${vectors.access_token}x` }),
    );
    expect(error.description).toContain('claim ath does not match the access token');
  });

  it('refuses a replay of an example proof, and forgets its jti once its window has passed', async () => {
    // Proofs 1 and 2 share a jti; proof 2 was made 2680 s after proof 1.
    const [first, second] = vectors.proofs;
    const { clock, verify } = setUp();
    clock.now = first!.payload.iat * 1000;
    await verify(first!.compact, rfcRequest(first!));
    const replay = await refusal(verify(first!.compact, rfcRequest(first!)));
    expect(replay.description).toContain('already been used');
    clock.now = second!.payload.iat * 1000;
    await expect(verify(second!.compact, rfcRequest(second!))).resolves.toMatchObject({
      jti: first!.payload.jti,
    });
  });
});

describe('proofs that are accepted', () => {
  it.each([
    ['an EdDSA proof (Ed25519 key)', () => proof(ed)],
    ['an Ed25519-alg proof', () => proof(ed25519)],
    ['an ES256 proof', () => proof(es)],
    ['a PS256 proof', () => proof(rsa)],
    ['a single header given as a one-element list', async () => [await proof(es)]],
    ['iat exactly 60 s in the past', () => proof(es, { iat: NOW_S - 60 })],
    ['iat exactly the 5 s clock tolerance in the future', () => proof(es, { iat: NOW_S + 5 })],
    [
      'htu with upper-case scheme and host and the default port',
      () => proof(es, { htu: 'HTTPS://API.Example.COM:443/v1/things' }),
    ],
    [
      'htu with a percent-encoded unreserved character',
      () => proof(es, { htu: 'https://api.example.com/v1/%74hings' }),
    ],
    // RFC 9449 §4.3 step 9 compares "ignoring any query and fragment parts": a client that left
    // them in htu gains nothing, since the query is never covered by the proof.
    ['htu with a query and a fragment', () => proof(es, { htu: `${REQUEST_URL}?page=2#top` })],
    ['extra claims and header parameters', () => proof(es, { purpose: 'test' }, { kid: 'k-1' })],
  ])('%s', async (_name, make) => {
    const { verify } = setUp();
    const verified = await verify(await make());
    expect(verified.htm).toBe(METHOD);
    expect(verified.publicJwk).not.toHaveProperty('d');
    expect(verified.jkt).toBe(await calculateJwkThumbprint(verified.publicJwk, 'sha256'));
  });

  it('accepts a request URL with a query that the proof does not carry', async () => {
    const { verify } = setUp();
    await expect(verify(await proof(es), { url: `${REQUEST_URL}?page=2` })).resolves.toBeDefined();
  });

  it('returns the thumbprint of the proof key and the proof claims', async () => {
    const { verify } = setUp();
    const jti = randomUUID();
    const verified = await verify(await proof(ed, { jti }));
    expect(verified).toEqual({
      jkt: await calculateJwkThumbprint(ed.publicJwk, 'sha256'),
      jti,
      iat: NOW_S,
      htm: METHOD,
      htu: REQUEST_URL,
      publicJwk: ed.publicJwk,
    });
  });

  it('accepts the right ath, the bound key and the current nonce together', async () => {
    const { verify } = setUp();
    const accessToken = 'eyJ.access.token';
    const p = await proof(es, { ath: await dpopAth(accessToken), nonce: 'n-2' });
    const verified = await verify(p, {
      accessToken,
      expectedJkt: await calculateJwkThumbprint(es.publicJwk, 'sha256'),
      nonce: 'n-2',
    });
    expect(verified.jkt).toBe(await calculateJwkThumbprint(es.publicJwk, 'sha256'));
  });

  it('asks a nonce check function with the verified nonce claim, and holds the proof to its answer', async () => {
    const { verify } = setUp();
    const accepted = new Set(['n-1', 'n-2']);
    const seen: unknown[] = [];
    const check = (n: unknown) => {
      seen.push(n);
      return typeof n === 'string' && accepted.has(n) ? n : 'n-2';
    };
    await expect(verify(await proof(es, { nonce: 'n-1' }), { nonce: check })).resolves.toBeDefined();
    const stale = await refusal(verify(await proof(es, { nonce: 'n-0' }), { nonce: check }));
    expect(stale.code).toBe('use_dpop_nonce');
    const none = await refusal(verify(await proof(es), { nonce: check }));
    expect(none.description).toContain('a DPoP nonce is required');
    expect(seen).toEqual(['n-1', 'n-0', undefined]);
  });
});

interface Attack {
  header: () => Promise<string | string[] | undefined>;
  request?: () => Promise<Partial<DpopRequest>>;
  options?: Partial<DpopVerifierOptions>;
  code?: DpopErrorCode;
  description: string;
}

const attacks: Record<string, Attack> = {
  'no DPoP header': { header: async () => undefined, description: 'the DPoP header is missing' },
  'an empty DPoP header': { header: async () => '', description: 'the DPoP header is missing' },
  'an empty header list': { header: async () => [], description: 'the DPoP header is missing' },
  'two DPoP headers': {
    header: async () => [await proof(es), await proof(es)],
    description: 'more than one DPoP header',
  },
  'two proofs joined into one header by a comma': {
    header: async () => `${await proof(es)}, ${await proof(es)}`,
    description: 'more than one DPoP header',
  },
  'a proof over the default size limit': {
    header: () => proof(es, { padding: 'x'.repeat(DPOP_DEFAULTS.maxProofBytes) }),
    description: 'larger than 8192 bytes',
  },
  'a proof over a configured size limit': {
    header: () => proof(es),
    options: { maxProofBytes: 200 },
    description: 'larger than 200 bytes',
  },
  'a value that is not a JWT': { header: async () => 'not-a-jwt', description: 'not a compact JWS' },
  'a five-part JWE-shaped value': { header: async () => 'a.b.c.d.e', description: 'not a compact JWS' },
  'a header that is not JSON': {
    header: async () => `${base64url.encode('nope')}.${encodeJson({})}.c2ln`,
    description: 'header is not base64url-encoded JSON',
  },
  'alg none': {
    header: async () =>
      unsigned(
        { alg: 'none', typ: 'dpop+jwt', jwk: es.publicJwk },
        { jti: randomUUID(), htm: METHOD, htu: REQUEST_URL, iat: NOW_S },
      ),
    description: 'alg header is not an accepted asymmetric algorithm',
  },
  'HS256 signed with the public key as the HMAC secret': {
    header: async () =>
      new SignJWT({ jti: randomUUID(), htm: METHOD, htu: REQUEST_URL, iat: NOW_S })
        .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: es.publicJwk })
        .sign(new TextEncoder().encode(await exportSPKI(es.publicKey))),
    description: 'alg header is not an accepted asymmetric algorithm',
  },
  'an asymmetric alg outside the configured allow-list': {
    header: () => proof(es),
    options: { algorithms: ['EdDSA'] },
    description: 'alg header is not an accepted asymmetric algorithm',
  },
  'typ JWT': { header: () => proof(es, {}, { typ: 'JWT' }), description: 'typ header must be dpop+jwt' },
  'typ at+jwt (an access token swapped in)': {
    header: () => proof(es, {}, { typ: 'at+jwt' }),
    description: 'typ header must be dpop+jwt',
  },
  // RFC 9449 §4.3 step 4 names the exact value; the RFC 7515 long form is not accepted either.
  'typ application/dpop+jwt': {
    header: () => proof(es, {}, { typ: 'application/dpop+jwt' }),
    description: 'typ header must be dpop+jwt',
  },
  'no typ': { header: () => proof(es, {}, { typ: undefined }), description: 'typ header must be dpop+jwt' },
  'no jwk': {
    header: () => proof(es, {}, { jwk: undefined }),
    description: 'jwk header must be a JSON object',
  },
  'a jwk that is a string': {
    header: () => proof(es, {}, { jwk: 'key' }),
    description: 'jwk header must be a JSON object',
  },
  'a private EC key in jwk': {
    header: () => proof(es, {}, { jwk: es.privateJwk }),
    description: 'must not contain a private key (member d)',
  },
  'a private Ed25519 key in jwk': {
    header: () => proof(ed, {}, { jwk: ed.privateJwk }),
    description: 'must not contain a private key (member d)',
  },
  'a private RSA key in jwk': {
    header: () => proof(rsa, {}, { jwk: rsa.privateJwk }),
    description: 'must not contain a private key (member d)',
  },
  'a symmetric key in jwk': {
    header: () => proof(es, {}, { jwk: { kty: 'oct', k: 'c2VjcmV0' } }),
    description: 'must not contain a private key (member k)',
  },
  'a jwk of another key type than alg': {
    header: () => proof(es, {}, { jwk: ed.publicJwk }),
    description: 'jwk header is not a public key for the alg header',
  },
  'a jwk whose own alg differs from the alg header': {
    header: () => proof(es, {}, { jwk: { ...es.publicJwk, alg: 'ES384' } }),
    description: 'jwk header alg differs from the alg header',
  },
  'a signature by another key than jwk': {
    header: () => proof(es, {}, { jwk: other.publicJwk }),
    description: 'signature does not verify with the jwk header key',
  },
  'a payload changed after signing': {
    header: async () =>
      withPayload(await proof(es), {
        jti: randomUUID(),
        htm: METHOD,
        htu: REQUEST_URL,
        iat: NOW_S,
        admin: true,
      }),
    description: 'signature does not verify with the jwk header key',
  },
  'missing jti': { header: () => proof(es, { jti: undefined }), description: 'claim jti is missing' },
  'a numeric jti': {
    header: () => proof(es, { jti: 42 }),
    description: 'claim jti is missing or not a string',
  },
  'a jti over 256 characters': {
    header: () => proof(es, { jti: 'j'.repeat(257) }),
    description: 'claim jti is longer than 256 characters',
  },
  'missing htm': { header: () => proof(es, { htm: undefined }), description: 'claim htm is missing' },
  'missing htu': { header: () => proof(es, { htu: undefined }), description: 'claim htu is missing' },
  'missing iat': { header: () => proof(es, { iat: undefined }), description: 'claim iat is missing' },
  'an iat that is a string': {
    header: () => proof(es, { iat: `${NOW_S}` }),
    description: 'claim iat is invalid',
  },
  'htm GET on a POST': { header: () => proof(es, { htm: 'GET' }), description: 'claim htm does not match' },
  'htm in lower case': { header: () => proof(es, { htm: 'post' }), description: 'claim htm does not match' },
  'htu of another host': {
    header: () => proof(es, { htu: 'https://evil.example.com/v1/things' }),
    description: 'claim htu does not match the request URL',
  },
  'htu of another path': {
    header: () => proof(es, { htu: 'https://api.example.com/v1/other' }),
    description: 'claim htu does not match the request URL',
  },
  'htu with http instead of https': {
    header: () => proof(es, { htu: 'http://api.example.com/v1/things' }),
    description: 'claim htu does not match the request URL',
  },
  'htu with another port': {
    header: () => proof(es, { htu: 'https://api.example.com:8443/v1/things' }),
    description: 'claim htu does not match the request URL',
  },
  'a relative htu': {
    header: () => proof(es, { htu: '/v1/things' }),
    description: 'claim htu is not an absolute http or https URI',
  },
  'htu with userinfo': {
    header: () => proof(es, { htu: 'https://user@api.example.com/v1/things' }),
    description: 'claim htu is not an absolute http or https URI',
  },
  'an htu with a broken percent-encoding': {
    header: () => proof(es, { htu: 'https://api.example.com/%zz' }),
    description: 'claim htu is not an absolute http or https URI',
  },
  'a request URL that cannot be normalised': {
    header: () => proof(es),
    request: async () => ({ url: 'https://api.example.com/v1/%zz' }),
    description: 'the request URL cannot be compared with claim htu',
  },
  'iat 61 s in the past': {
    header: () => proof(es, { iat: NOW_S - 61 }),
    description: 'claim iat is more than 60 s in the past',
  },
  'iat 61 s in the future': {
    header: () => proof(es, { iat: NOW_S + 61 }),
    description: 'claim iat is more than 5 s in the future',
  },
  'iat just past the clock tolerance in the future (inside the window)': {
    header: () => proof(es, { iat: NOW_S + 6 }),
    description: 'claim iat is more than 5 s in the future',
  },
  'an nbf further ahead than the clock tolerance': {
    header: () => proof(es, { nbf: NOW_S + 6 }),
    description: 'claim nbf is invalid',
  },
  'iat outside a narrower configured window': {
    header: () => proof(es, { iat: NOW_S - 11 }),
    options: { iatWindowSeconds: 10 },
    description: 'claim iat is more than 10 s in the past',
  },
  'an exp that has passed': {
    header: () => proof(es, { exp: NOW_S - 61 }),
    description: 'the DPoP proof has expired (exp)',
  },
  'a presented token without ath': {
    header: () => proof(es),
    request: async () => ({ accessToken: 'access-token' }),
    description: 'claim ath is required when an access token is presented',
  },
  'ath of another token': {
    header: async () => proof(es, { ath: await dpopAth('another-token') }),
    request: async () => ({ accessToken: 'access-token' }),
    description: 'claim ath does not match the access token',
  },
  'ath of the token itself rather than its hash': {
    header: () => proof(es, { ath: 'access-token' }),
    request: async () => ({ accessToken: 'access-token' }),
    description: 'claim ath does not match the access token',
  },
  'a proof key other than the one the token is bound to': {
    header: () => proof(es),
    request: async () => ({ expectedJkt: await calculateJwkThumbprint(other.publicJwk, 'sha256') }),
    description: 'the proof key is not the key the access token is bound to',
  },
  'no nonce when the server requires one': {
    header: () => proof(es),
    request: async () => ({ nonce: 'n-2' }),
    code: 'use_dpop_nonce',
    description: 'a DPoP nonce is required',
  },
  'an old nonce': {
    header: () => proof(es, { nonce: 'n-1' }),
    request: async () => ({ nonce: 'n-2' }),
    code: 'use_dpop_nonce',
    description: 'claim nonce is not the current DPoP nonce',
  },
};

describe('proofs an attacker might send', () => {
  it.each(Object.entries(attacks))('refuses %s', async (_name, attack) => {
    const { verify, replayCache } = setUp();
    const header = await attack.header();
    const error = await refusal(verify(header, (await attack.request?.()) ?? {}, attack.options));
    expect(error.code).toBe(attack.code ?? 'invalid_dpop_proof');
    expect(error.description).toContain(attack.description);
    expect(error.description).toMatch(ERROR_DESCRIPTION_CHARSET);
    // A refused proof leaves nothing behind in the replay cache.
    expect(replayCache.size).toBe(0);
  });
});

describe('single use (jti replay)', () => {
  it('refuses the same proof twice', async () => {
    const { verify } = setUp();
    const p = await proof(ed);
    await verify(p);
    const error = await refusal(verify(p));
    expect(error.code).toBe('invalid_dpop_proof');
    expect(error.description).toContain('claim jti has already been used');
  });

  it('refuses a jti re-used by the same key in a newly signed proof within the window', async () => {
    const { clock, verify } = setUp();
    const jti = randomUUID();
    await verify(await proof(es, { jti }));
    clock.now += 30_000;
    const error = await refusal(verify(await proof(es, { jti, iat: NOW_S + 30 })));
    expect(error.description).toContain('already been used');
  });

  it('refuses a replay at another URL on the same server too', async () => {
    const { verify } = setUp();
    const jti = randomUUID();
    await verify(await proof(es, { jti }));
    const otherUrl = 'https://api.example.com/v1/other';
    const error = await refusal(verify(await proof(es, { jti, htu: otherUrl }), { url: otherUrl }));
    expect(error.description).toContain('already been used');
  });

  // The cache is keyed by (jkt, jti). Every replay of a signed proof carries the same key and jti,
  // so it is always caught; keying by key also means an attacker cannot use up an honest client's
  // jti values with proofs of their own (RFC 9449 §11.1 asks only for uniqueness per context).
  it('accepts the same jti from a different key', async () => {
    const { verify } = setUp();
    const jti = randomUUID();
    await verify(await proof(es, { jti }));
    await expect(verify(await proof(other, { jti }))).resolves.toMatchObject({ jti });
  });

  it('does not use up the jti of a refused proof', async () => {
    const { verify } = setUp();
    const jti = randomUUID();
    await refusal(verify(await proof(es, { jti, htm: 'GET' })));
    await refusal(verify(await proof(es, { jti }), { accessToken: 'token' }));
    await refusal(verify(await proof(es, { jti }), { nonce: 'n-1' }));
    await expect(verify(await proof(es, { jti }))).resolves.toMatchObject({ jti });
  });

  it('forgets a jti once no proof carrying it can still be fresh', async () => {
    const { clock, verify, replayCache } = setUp(1);
    const jti = randomUUID();
    await verify(await proof(es, { jti, iat: NOW_S + 5 }));
    // iat + 60 s: the proof itself would still be accepted, so the jti is still remembered.
    clock.now = NOW + 65_000;
    expect((await refusal(verify(await proof(es, { jti, iat: NOW_S + 65 })))).description).toContain(
      'already been used',
    );
    clock.now = NOW + 65_001;
    await expect(verify(await proof(es, { jti, iat: NOW_S + 65 }))).resolves.toMatchObject({ jti });
    expect(replayCache.size).toBe(1);
  });

  it('accepts exactly one of several concurrent copies of a proof', async () => {
    const { verify } = setUp();
    const p = await proof(es);
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => verify(p)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  it('refuses new proofs while the replay cache is full, and accepts them once entries expire', async () => {
    const { clock, verify } = setUp(2);
    await verify(await proof(es));
    await verify(await proof(other));
    const error = await refusal(verify(await proof(ed)));
    expect(error.code).toBe('invalid_dpop_proof');
    expect(error.description).toContain('the replay cache is full');
    clock.now = NOW + 60_001;
    await expect(verify(await proof(ed, { iat: NOW_S + 60 }))).resolves.toBeDefined();
  });
});

describe('iat in the future: only the clock tolerance, not the window (issue 9 item 10)', () => {
  it.each([
    [5, undefined],
    [30, { clockToleranceSeconds: 30 }],
  ] as const)(
    'tolerance %i s: iat = now + tolerance + 1 is refused, now + tolerance - 1 accepted',
    async (tolerance, options) => {
      const { verify } = setUp();
      const ahead = await refusal(verify(await proof(es, { iat: NOW_S + tolerance + 1 }), {}, options ?? {}));
      expect(ahead.code).toBe('invalid_dpop_proof');
      expect(ahead.description).toBe(`claim iat is more than ${tolerance} s in the future`);
      await expect(
        verify(await proof(es, { iat: NOW_S + tolerance - 1 }), {}, options ?? {}),
      ).resolves.toMatchObject({ iat: NOW_S + tolerance - 1 });
    },
  );

  it('a refused future proof does not use up its jti', async () => {
    const { verify } = setUp();
    const jti = randomUUID();
    await refusal(verify(await proof(es, { jti, iat: NOW_S + 6 })));
    await expect(verify(await proof(es, { jti }))).resolves.toMatchObject({ jti });
  });

  it('caps a tolerance larger than the window at the window', async () => {
    const { verify } = setUp();
    const options = { iatWindowSeconds: 10, clockToleranceSeconds: 300 };
    await expect(verify(await proof(es, { iat: NOW_S + 10 }), {}, options)).resolves.toBeDefined();
    expect((await refusal(verify(await proof(es, { iat: NOW_S + 11 }), {}, options))).description).toBe(
      'claim iat is more than 10 s in the future',
    );
  });
});

describe('configuration', () => {
  it.each([
    ['alg none', { algorithms: ['none'] }],
    ['a symmetric alg', { algorithms: ['ES256', 'HS256'] }],
    ['an unknown alg', { algorithms: ['XS256'] }],
    ['no algs', { algorithms: [] }],
    ['a zero iat window', { iatWindowSeconds: 0 }],
    ['a negative clock tolerance', { clockToleranceSeconds: -1 }],
    ['a negative proof size limit', { maxProofBytes: -1 }],
  ])('refuses %s as a programming error, not a client error', async (_name, options) => {
    const { verify } = setUp();
    await expect(verify(await proof(es), {}, options)).rejects.toThrow(TypeError);
  });
});
