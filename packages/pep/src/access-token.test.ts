import { randomUUID } from 'node:crypto';
import {
  base64url,
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { type AccessTokenVerifierOptions, createAccessTokenVerifier } from './access-token.js';
import { dpopAth } from './dpop.js';
import { type KeySource, localKeySource, remoteKeySource } from './jwks.js';
import { ReplayCache } from './replay-cache.js';
import { type TokenRefusalCode, TokenRefused } from './token-refusal.js';

const NOW = 1_700_000_000_000;
const NOW_S = NOW / 1000;
const ISSUER = 'https://broker.example.com';
const AUDIENCE = 'https://api.example.com';
const PUBLIC_BASE_URL = 'https://api.example.com';
const PATH = '/v1/things?page=2';
const HTU = 'https://api.example.com/v1/things';
const TENANT = 'tenant-a';
// RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E (no '"' or '\').
const ERROR_DESCRIPTION_CHARSET = /^[\x20\x21\x23-\x5B\x5D-\x7E]+$/;

interface Signer {
  alg: string;
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  privateJwk: JWK;
  jkt: string;
}

async function signer(alg: 'Ed25519' | 'ES256'): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const jkt = await calculateJwkThumbprint(publicJwk, 'sha256');
  return {
    alg: alg === 'Ed25519' ? 'EdDSA' : alg,
    kid: jkt,
    privateKey,
    publicJwk,
    privateJwk: await exportJWK(privateKey),
    jkt,
  };
}

let issuer: Signer; // the broker's signing key, published in the JWKS
let issuerEc: Signer; // a second published key, of another type
let forger: Signer; // an attacker's key, not published
let holder: Signer; // the session's DPoP key: cnf.jkt
let thief: Signer; // an attacker who stole the token but not the holder's key
let thiefEc: Signer; // the same, with a key of the holder's type
let keys: KeySource;

beforeAll(async () => {
  [issuer, issuerEc, forger, holder, thief, thiefEc] = await Promise.all([
    signer('Ed25519'),
    signer('ES256'),
    signer('Ed25519'),
    signer('ES256'),
    signer('Ed25519'),
    signer('ES256'),
  ]);
  keys = await localKeySource({
    keys: [
      { ...issuer.publicJwk, kid: issuer.kid, alg: 'EdDSA', use: 'sig' },
      { ...issuerEc.publicJwk, kid: issuerEc.kid, alg: 'ES256', use: 'sig' },
    ],
  });
});

/** The claims the broker issues (packages/broker/src/tokens/access-token.ts), valid at NOW. */
function brokerClaims(): Record<string, unknown> {
  return {
    iss: ISSUER,
    sub: 'principal-1',
    aud: AUDIENCE,
    exp: NOW_S + 300,
    iat: NOW_S,
    jti: randomUUID(),
    client_id: 'principal-1',
    tenant: TENANT,
    sid: 'session-1',
    cnf: { jkt: holder.jkt },
    ticket: 'OPS-42',
    session_exp: NOW_S + 3600,
    status: { status_list: { idx: 7, uri: `${ISSUER}/v1/status-lists/1` } },
    authorization_details: [
      {
        type: 'tether_privilege',
        privilege: 'firewall-admin',
        actions: ['firewall:write'],
        resources: ['fw/edge-1'],
      },
    ],
  };
}

/** An access token; `undefined` in claims or header removes that member. */
async function token(
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
  by: Signer = issuer,
): Promise<string> {
  const payload = withoutUndefined({ ...brokerClaims(), ...claims });
  return new SignJWT(payload as JWTPayload)
    .setProtectedHeader(withoutUndefined({ alg: by.alg, typ: 'at+jwt', kid: by.kid, ...header }) as never)
    .sign(by.privateKey);
}

/** A DPoP proof for GET HTU at `iat`, bound to `accessToken`; `undefined` removes a member. */
async function proof(
  accessToken: string,
  claims: Record<string, unknown> = {},
  options: { by?: Signer; header?: Record<string, unknown> } = {},
): Promise<string> {
  const by = options.by ?? holder;
  const payload = withoutUndefined({
    jti: randomUUID(),
    htm: 'GET',
    htu: HTU,
    iat: NOW_S,
    ath: await dpopAth(accessToken),
    ...claims,
  });
  return new SignJWT(payload as JWTPayload)
    .setProtectedHeader({ alg: by.alg, typ: 'dpop+jwt', jwk: by.publicJwk, ...options.header })
    .sign(by.privateKey);
}

function withoutUndefined(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));
}

const encodeJson = (value: unknown) => base64url.encode(JSON.stringify(value));
const decodePart = (part: string) => JSON.parse(new TextDecoder().decode(base64url.decode(part)));

function setUp(options: Partial<AccessTokenVerifierOptions> = {}) {
  const clock = { now: NOW };
  const now = () => clock.now;
  const verifier = createAccessTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    tenant: TENANT,
    publicBaseUrl: PUBLIC_BASE_URL,
    keys,
    now,
    replayCache: new ReplayCache({ maxEntries: 1_000, now }),
    ...options,
  });
  /** A request for GET PATH presenting `accessToken` with the DPoP scheme and `dpop` (default: a fresh proof at the clock). */
  const request = async (
    accessToken: string,
    over: {
      method?: string;
      path?: string;
      authorization?: string | string[];
      dpop?: string | string[];
    } = {},
  ) => ({
    method: over.method ?? 'GET',
    path: over.path ?? PATH,
    authorization: 'authorization' in over ? over.authorization : `DPoP ${accessToken}`,
    dpop: 'dpop' in over ? over.dpop : await proof(accessToken, { iat: Math.floor(clock.now / 1000) }),
  });
  const verify = async (accessToken: string, over: Parameters<typeof request>[1] = {}) =>
    verifier.verify(await request(accessToken, over));
  return { clock, verifier, verify };
}

/** Awaits a refusal and checks what the client is told: code, description and challenge. */
async function expectRefused(
  promise: Promise<unknown>,
  code: TokenRefusalCode,
  description: string,
): Promise<TokenRefused> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the request was accepted').toBeInstanceOf(TokenRefused);
  const refusal = error as TokenRefused;
  expect(refusal.code).toBe(code);
  expect(refusal.status).toBe(401);
  expect(refusal.description).toContain(description);
  expect(refusal.description).toMatch(ERROR_DESCRIPTION_CHARSET);
  expect(refusal.wwwAuthenticate).toMatch(/^DPoP /);
  expect(refusal.wwwAuthenticate).toContain(`error="${code}"`);
  expect(refusal.wwwAuthenticate).toContain(`error_description="${refusal.description}"`);
  expect(refusal.wwwAuthenticate).toMatch(/algs="[^"]*EdDSA[^"]*"/);
  return refusal;
}

describe('a valid request', () => {
  it('answers the verified claims and proof', async () => {
    const { verify } = setUp();
    const accessToken = await token();
    const { claims, proof: verified } = await verify(accessToken);
    const expected = { ...brokerClaims(), jti: claims.jti };
    expect(claims).toEqual(expected);
    expect(verified).toMatchObject({ jkt: holder.jkt, htm: 'GET', htu: HTU });
    expect(Object.isFrozen(claims)).toBe(true);
    expect(Object.isFrozen(claims.authorization_details[0]!.actions)).toBe(true);
  });

  type Claims = Record<string, unknown>;
  it.each<[string, { header?: Claims; claims?: Claims; authorization?: (t: string) => string }]>([
    ['a lower-case scheme', { authorization: (t) => `dpop ${t}` }],
    ['typ application/at+jwt', { header: { typ: 'application/at+jwt' } }],
    ['an audience list holding this audience', { claims: { aud: ['https://other.example', AUDIENCE] } }],
    ['a token without ticket', { claims: { ticket: undefined } }],
    ['a past nbf', { claims: { nbf: NOW_S - 10 } }],
    ['iat within the leeway in the future', { claims: { iat: NOW_S + 5 } }],
    ['exp equal to session_exp', { claims: { exp: NOW_S + 60, session_exp: NOW_S + 60 } }],
  ])('accepts %s', async (_name, { header, claims, authorization }) => {
    const { verify } = setUp();
    const accessToken = await token(claims, header);
    const over = authorization === undefined ? {} : { authorization: authorization(accessToken) };
    await expect(verify(accessToken, over)).resolves.toBeDefined();
  });

  it('accepts an ES256 token when ES256 is allowed, and refuses it by default', async () => {
    const accessToken = await token({}, {}, issuerEc);
    await expect(setUp({ algorithms: ['EdDSA', 'ES256'] }).verify(accessToken)).resolves.toBeDefined();
    await expectRefused(
      setUp().verify(accessToken),
      'invalid_token',
      'alg is not an accepted algorithm (EdDSA)',
    );
  });

  it('cannot be created without a tenant: tokens of every tenant share one issuer and key', () => {
    expect(() => setUp({ tenant: undefined })).toThrow(TypeError);
  });

  it('builds htu from the public base URL and a base path, not from anything the client sends', async () => {
    const { verify } = setUp({ publicBaseUrl: 'https://gw.example.com/api/' });
    const accessToken = await token();
    const dpop = await proof(accessToken, { htu: 'https://gw.example.com/api/v1/things' });
    await expect(verify(accessToken, { path: '/v1/things', dpop })).resolves.toBeDefined();
  });
});

describe('the Authorization header', () => {
  it('without one, answers a bare DPoP challenge (RFC 6750 §3.1)', async () => {
    const { verify } = setUp();
    const error = await verify(await token(), { authorization: undefined }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenRefused);
    const refusal = error as TokenRefused;
    expect(refusal.code).toBe('invalid_token');
    expect(refusal.description).toContain('no Authorization header');
    expect(refusal.wwwAuthenticate).toMatch(/^DPoP algs="[^"]*EdDSA[^"]*"$/);
  });

  it('refuses two Authorization headers', async () => {
    const { verify } = setUp();
    const accessToken = await token();
    await expectRefused(
      verify(accessToken, { authorization: [`DPoP ${accessToken}`, `DPoP ${accessToken}`] }),
      'invalid_token',
      'more than one Authorization header',
    );
  });

  it('refuses a DPoP-bound token presented with the Bearer scheme', async () => {
    const { verify } = setUp();
    const accessToken = await token();
    await expectRefused(
      verify(accessToken, { authorization: `Bearer ${accessToken}` }),
      'invalid_token',
      'DPoP-bound tokens must be sent with the DPoP authorization scheme, not Bearer',
    );
  });

  it.each([
    ['another scheme', (t: string) => `Basic ${t}`, 'scheme must be DPoP'],
    ['no token', () => 'DPoP', 'carries no token'],
    ['a malformed value', () => 'DPoP, x', 'not of the form'],
    ['a token that is not a JWS', () => 'DPoP abc.def', 'not a compact JWS'],
    ['a JWE-shaped token', (t: string) => `DPoP ${t}.x.y`, 'not a compact JWS'],
    ['a token over 8 KB', () => `DPoP ${'a'.repeat(8192)}.b.c`, 'larger than 8192 bytes'],
  ])('refuses %s', async (_name, authorization, description) => {
    const { verify } = setUp();
    const accessToken = await token();
    await expectRefused(
      verify(accessToken, { authorization: authorization(accessToken) }),
      'invalid_token',
      description,
    );
  });
});

describe('the token header and signature', () => {
  it('refuses alg none', async () => {
    const { verify } = setUp();
    const unsigned = `${encodeJson({ alg: 'none', typ: 'at+jwt', kid: issuer.kid })}.${encodeJson(brokerClaims())}.`;
    await expectRefused(verify(unsigned), 'invalid_token', 'alg none');
  });

  it('refuses HS256 signed with the public key bytes (algorithm confusion)', async () => {
    const { verify } = setUp();
    const secrets = [
      new TextEncoder().encode(await exportSPKI((await keys.getKey(issuer.kid))!)),
      base64url.decode(issuer.publicJwk.x!),
      new TextEncoder().encode(JSON.stringify(issuer.publicJwk)),
    ];
    for (const secret of secrets) {
      const forged = await new SignJWT(brokerClaims() as JWTPayload)
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: issuer.kid })
        .sign(secret);
      await expectRefused(verify(forged), 'invalid_token', 'symmetric token algorithms');
    }
  });

  it('refuses an alg outside the allow-list', async () => {
    const { verify } = setUp();
    const header = { alg: 'RS256', typ: 'at+jwt', kid: issuer.kid };
    const forged = `${encodeJson(header)}.${encodeJson(brokerClaims())}.c2lnbmF0dXJl`;
    await expectRefused(verify(forged), 'invalid_token', 'alg is not an accepted algorithm (EdDSA)');
  });

  it.each([
    ['no typ', { typ: undefined }, 'typ header must be at+jwt'],
    ['typ JWT', { typ: 'JWT' }, 'typ header must be at+jwt'],
    ['typ dpop+jwt (a proof passed off as a token)', { typ: 'dpop+jwt' }, 'typ header must be at+jwt'],
    ['no kid', { kid: undefined }, 'no kid'],
  ])('refuses a token signed by the issuer with %s in its header', async (_name, header, description) => {
    const { verify } = setUp();
    await expectRefused(verify(await token({}, header)), 'invalid_token', description);
  });

  it('refuses a kid the issuer does not publish', async () => {
    const { verify } = setUp();
    await expectRefused(
      verify(await token({}, {}, forger)),
      'invalid_token',
      'kid is not a signing key of the issuer',
    );
  });

  it("refuses a token signed by another key under the issuer's kid", async () => {
    const { verify } = setUp();
    await expectRefused(
      verify(await token({}, { kid: issuer.kid }, forger)),
      'invalid_token',
      'signature does not verify',
    );
  });

  it("refuses an EdDSA header naming the issuer's P-256 key", async () => {
    const { verify } = setUp();
    await expectRefused(
      verify(await token({}, { kid: issuerEc.kid })),
      'invalid_token',
      'does not fit the token alg',
    );
  });

  it('refuses a token whose authorization_details were edited after signing', async () => {
    const { verify } = setUp();
    const [header, payload, signature] = (await token()).split('.') as [string, string, string];
    const claims = decodePart(payload);
    claims.authorization_details[0].actions = ['*'];
    claims.authorization_details[0].resources = ['*'];
    const tampered = `${header}.${encodeJson(claims)}.${signature}`;
    await expectRefused(verify(tampered), 'invalid_token', 'signature does not verify');
  });

  it('fails closed when the issuer keys cannot be fetched', async () => {
    const { verify } = setUp({
      // Nothing listens on port 9 of the loopback interface.
      keys: remoteKeySource('http://127.0.0.1:9/.well-known/jwks.json', { now: () => NOW }),
    });
    await expectRefused(verify(await token()), 'invalid_token', 'signing keys are unavailable');
  });
});

describe('the token claims', () => {
  it.each([
    ['a wrong issuer', { iss: 'https://evil.example.com' }, 'claim iss is not the expected issuer'],
    ['no issuer', { iss: undefined }, 'claim iss is not the expected issuer'],
    [
      'another audience',
      { aud: 'https://other.example.com' },
      'claim aud does not include this resource server',
    ],
    [
      'an audience list without this one',
      { aud: ['https://other.example.com'] },
      'claim aud does not include',
    ],
    ['no exp', { exp: undefined }, 'claim exp is missing'],
    ['a future nbf', { nbf: NOW_S + 6 }, 'not valid yet (nbf)'],
    ['an iat beyond the leeway in the future', { iat: NOW_S + 6 }, 'claim iat is in the future'],
    ['no iat', { iat: undefined }, 'claim iat is missing'],
    ['a passed session_exp', { exp: NOW_S + 60, session_exp: NOW_S - 5 }, 'the session has ended'],
    [
      'exp later than session_exp',
      { exp: NOW_S + 300, session_exp: NOW_S + 200 },
      'claim exp is later than session_exp',
    ],
    ['no cnf', { cnf: undefined }, 'claim cnf.jkt is missing'],
    ['no cnf.jkt', { cnf: {} }, 'the token is not DPoP-bound'],
    ['a cnf.jkt that is not a thumbprint', { cnf: { jkt: 'x' } }, 'claim cnf.jkt'],
    ['no sid', { sid: undefined }, 'claim sid is missing'],
    ['no tenant', { tenant: undefined }, 'claim tenant is missing'],
    ['a numeric tenant', { tenant: 1 }, 'claim tenant is missing or not a string'],
    ['no client_id', { client_id: undefined }, 'claim client_id is missing'],
    ['no jti', { jti: undefined }, 'claim jti is missing'],
    ['no sub', { sub: undefined }, 'claim sub is missing'],
    ['no session_exp', { session_exp: undefined }, 'claim session_exp is missing'],
    [
      'a string session_exp',
      { session_exp: String(NOW_S + 3600) },
      'claim session_exp is missing or not a number',
    ],
    ['no status', { status: undefined }, 'claim status.status_list is missing'],
    [
      'a negative status index',
      { status: { status_list: { idx: -1, uri: 'x' } } },
      'idx is not a non-negative',
    ],
    ['a non-string ticket', { ticket: 42 }, 'claim ticket is not a string'],
    ['no authorization_details', { authorization_details: undefined }, 'authorization_details is missing'],
    [
      'empty authorization_details',
      { authorization_details: [] },
      'authorization_details is missing or empty',
    ],
    [
      'an authorization_details entry of another type',
      { authorization_details: [{ type: 'payment_initiation', privilege: 'p', actions: [], resources: [] }] },
      'must be of type tether_privilege',
    ],
    [
      'an authorization_details entry without privilege',
      { authorization_details: [{ type: 'tether_privilege', actions: [], resources: [] }] },
      'has no privilege string',
    ],
    [
      'actions that are not strings',
      { authorization_details: [{ type: 'tether_privilege', privilege: 'p', actions: [1], resources: [] }] },
      'actions that are not strings',
    ],
    [
      'resources that are not an array',
      {
        authorization_details: [{ type: 'tether_privilege', privilege: 'p', actions: [], resources: 'fw/*' }],
      },
      'resources that are not strings',
    ],
  ])('refuses a signed token with %s', async (_name, claims, description) => {
    const { verify } = setUp();
    await expectRefused(verify(await token(claims)), 'invalid_token', description);
  });

  it('refuses a token of tenant A at a PEP of tenant B', async () => {
    const { verify } = setUp({ tenant: 'tenant-b' });
    await expectRefused(
      verify(await token({ tenant: 'tenant-a' })),
      'invalid_token',
      'belongs to another tenant',
    );
  });

  it('refuses a token once the clock passes exp plus the leeway, and accepts it just inside', async () => {
    const { clock, verify } = setUp({ verifiedTokenCacheSize: 0 });
    const accessToken = await token({ exp: NOW_S + 300 });
    clock.now = (NOW_S + 300 + 4) * 1000 + 999;
    await expect(verify(accessToken)).resolves.toBeDefined();
    clock.now = (NOW_S + 300 + 5) * 1000;
    await expectRefused(verify(accessToken), 'invalid_token', 'the token has expired (exp)');
  });

  it('refuses a token once the clock passes session_exp plus the leeway', async () => {
    const { clock, verify } = setUp({ verifiedTokenCacheSize: 0 });
    // A token issued earlier; its session ends before its exp would be checked.
    const accessToken = await token({ exp: NOW_S + 300, session_exp: NOW_S + 300 });
    clock.now = (NOW_S + 304) * 1000;
    await expect(verify(accessToken)).resolves.toBeDefined();
    clock.now = (NOW_S + 305) * 1000;
    await expectRefused(verify(accessToken), 'invalid_token', 'the token has expired');
  });
});

describe('the DPoP proof', () => {
  it('refuses a proof made with another key than the one the token is bound to', async () => {
    const { verify } = setUp();
    const stolen = await token();
    await expectRefused(
      verify(stolen, { dpop: await proof(stolen, {}, { by: thief }) }),
      'invalid_token',
      'Invalid DPoP key binding',
    );
  });

  it("refuses a proof that names the holder's public key but is signed by another", async () => {
    const { verify } = setUp();
    const stolen = await token();
    const forged = await proof(stolen, {}, { by: thiefEc, header: { jwk: holder.publicJwk } });
    await expectRefused(verify(stolen, { dpop: forged }), 'invalid_dpop_proof', 'signature does not verify');
  });

  it('refuses a replayed proof', async () => {
    const { verify } = setUp({ verifiedTokenCacheSize: 0 });
    const accessToken = await token();
    const dpop = await proof(accessToken);
    await verify(accessToken, { dpop });
    await expectRefused(
      verify(accessToken, { dpop }),
      'invalid_dpop_proof',
      'claim jti has already been used',
    );
  });

  it.each<[string, Record<string, unknown>, () => Record<string, unknown>, string]>([
    ['for another method', { htm: 'POST' }, () => ({}), 'claim htm does not match'],
    [
      'for another URL',
      { htu: 'https://other.example.com/v1/things' },
      () => ({}),
      'claim htu does not match',
    ],
    ['for another path', { htu: 'https://api.example.com/v1/other' }, () => ({}), 'claim htu does not match'],
    ['made more than 60 s ago', { iat: NOW_S - 61 }, () => ({}), 'more than 60 s in the past'],
    // Issue 9 item 10: ahead only by the 5 s leeway (the clock tolerance), not the 60 s window.
    ['dated more than the 5 s leeway ahead', { iat: NOW_S + 6 }, () => ({}), 'more than 5 s in the future'],
    ['without ath', { ath: undefined }, () => ({}), 'claim ath is required'],
    [
      'with a private key in its jwk header',
      {},
      () => ({ jwk: holder.privateJwk }),
      'must not contain a private key',
    ],
    ['typed as an access token', {}, () => ({ typ: 'at+jwt' }), 'typ header must be dpop+jwt'],
  ])('refuses a proof %s', async (_name, claims, header, description) => {
    const { verify } = setUp();
    const accessToken = await token();
    const dpop = await proof(accessToken, claims, { header: header() });
    await expectRefused(verify(accessToken, { dpop }), 'invalid_dpop_proof', description);
  });

  it('refuses a proof made for another token (wrong ath)', async () => {
    const { verify } = setUp();
    const accessToken = await token();
    const otherToken = await token();
    await expectRefused(
      verify(accessToken, { dpop: await proof(otherToken) }),
      'invalid_dpop_proof',
      'claim ath does not match the access token',
    );
  });

  it('refuses a request without a DPoP header', async () => {
    const { verify } = setUp();
    await expectRefused(
      verify(await token(), { dpop: undefined }),
      'invalid_dpop_proof',
      'DPoP header is missing',
    );
  });

  it('refuses a request target that is not a path, which could move htu to another host', async () => {
    const { verify } = setUp();
    const accessToken = await token();
    const dpop = await proof(accessToken, { htu: 'https://api.example.com.evil.example/x' });
    await expectRefused(
      verify(accessToken, { path: '.evil.example/x', dpop }),
      'invalid_dpop_proof',
      'must be a path beginning with /',
    );
  });

  it('does not use up the jti of a proof refused for its key binding', async () => {
    const { verify } = setUp();
    const stolen = await token();
    const theirs = await proof(stolen, {}, { by: thief });
    await expectRefused(verify(stolen, { dpop: theirs }), 'invalid_token', 'Invalid DPoP key binding');
    await expectRefused(verify(stolen, { dpop: theirs }), 'invalid_token', 'Invalid DPoP key binding');
  });
});

describe('the verified-token cache', () => {
  /** A key source that counts lookups, to see whether the token was verified again. */
  function counting(inner: KeySource) {
    const source = {
      lookups: 0,
      getKey: (kid: string) => {
        source.lookups += 1;
        return inner.getKey(kid);
      },
    };
    return source;
  }

  it('accepts the same token with a fresh proof without verifying the token again', async () => {
    const countingKeys = counting(keys);
    const { clock, verify } = setUp({ keys: countingKeys });
    const accessToken = await token();
    const first = await verify(accessToken);
    clock.now += 10_000;
    const second = await verify(accessToken);
    expect(second.claims).toBe(first.claims);
    expect(second.proof.jti).not.toBe(first.proof.jti);
    expect(countingKeys.lookups).toBe(1);
  });

  it('still refuses a replayed proof with a cached token', async () => {
    const { verify } = setUp();
    const accessToken = await token();
    const dpop = await proof(accessToken);
    await verify(accessToken, { dpop });
    await expectRefused(
      verify(accessToken, { dpop }),
      'invalid_dpop_proof',
      'claim jti has already been used',
    );
  });

  it('still checks every part of the proof with a cached token', async () => {
    const { verify } = setUp();
    const accessToken = await token();
    await verify(accessToken);
    await expectRefused(
      verify(accessToken, { dpop: await proof(accessToken, {}, { by: thief }) }),
      'invalid_token',
      'Invalid DPoP key binding',
    );
    await expectRefused(
      verify(accessToken, { dpop: await proof(accessToken, { htm: 'DELETE' }) }),
      'invalid_dpop_proof',
      'claim htm does not match',
    );
    await expectRefused(
      verify(accessToken, { dpop: await proof(await token()) }),
      'invalid_dpop_proof',
      'claim ath does not match',
    );
    await expectRefused(
      verify(accessToken, { dpop: undefined }),
      'invalid_dpop_proof',
      'DPoP header is missing',
    );
  });

  it('refuses a cached token once it has expired', async () => {
    const { clock, verify } = setUp();
    const accessToken = await token({ exp: NOW_S + 60 });
    await verify(accessToken);
    clock.now = (NOW_S + 65) * 1000;
    await expectRefused(verify(accessToken), 'invalid_token', 'the token has expired (exp)');
  });

  it('refuses a cached token once its session has ended', async () => {
    const { clock, verify } = setUp();
    const accessToken = await token({ exp: NOW_S + 60, session_exp: NOW_S + 60 });
    await verify(accessToken);
    clock.now = (NOW_S + 64) * 1000;
    await expect(verify(accessToken)).resolves.toBeDefined();
    clock.now = (NOW_S + 65) * 1000;
    await expectRefused(verify(accessToken), 'invalid_token', 'expired');
  });

  it('keeps at most verifiedTokenCacheSize tokens, dropping the least recently used', async () => {
    const countingKeys = counting(keys);
    const { verify } = setUp({ keys: countingKeys, verifiedTokenCacheSize: 2 });
    const [a, b, c] = await Promise.all([token(), token(), token()]);
    await verify(a!);
    await verify(b!);
    await verify(a!); // a is now the most recently used
    await verify(c!); // evicts b
    expect(countingKeys.lookups).toBe(3);
    await verify(a!);
    await verify(c!);
    expect(countingKeys.lookups).toBe(3);
    await verify(b!);
    expect(countingKeys.lookups).toBe(4);
  });

  it('does not cache a token whose proof was refused', async () => {
    const countingKeys = counting(keys);
    const { verify } = setUp({ keys: countingKeys });
    const accessToken = await token();
    await expectRefused(verify(accessToken, { dpop: undefined }), 'invalid_dpop_proof', 'missing');
    await verify(accessToken);
    expect(countingKeys.lookups).toBe(2);
  });
});

describe('configuration', () => {
  const base = (): AccessTokenVerifierOptions => ({
    issuer: ISSUER,
    audience: AUDIENCE,
    tenant: TENANT,
    publicBaseUrl: PUBLIC_BASE_URL,
    keys,
    now: () => NOW,
    replayCache: new ReplayCache({ maxEntries: 10, now: () => NOW }),
  });

  it('accepts the base configuration (so each refusal below is for its own reason)', () => {
    expect(() => createAccessTokenVerifier(base())).not.toThrow();
  });

  it.each([
    ['no tenant', { tenant: undefined }],
    ['an empty tenant', { tenant: '' }],
    ['a leeway above 5 s (refused, not clamped)', { leewaySeconds: 6 }],
    ['a negative leeway', { leewaySeconds: -1 }],
    ['alg none', { algorithms: ['none'] }],
    ['HS256', { algorithms: ['HS256'] }],
    ['RS256 (no key source yields RSA keys)', { algorithms: ['RS256'] }],
    ['no algorithms', { algorithms: [] }],
    ['an unknown option', { clockTolerance: 30 }],
    ['an empty issuer', { issuer: '' }],
    ['a publicBaseUrl with a query', { publicBaseUrl: 'https://api.example.com/?a=1' }],
    ['a relative publicBaseUrl', { publicBaseUrl: '/api' }],
    ['a negative cache size', { verifiedTokenCacheSize: -1 }],
    ['a zero DPoP window', { dpopIatWindowSeconds: 0 }],
  ])('refuses %s', (_name, over) => {
    expect(() => createAccessTokenVerifier({ ...base(), ...over } as AccessTokenVerifierOptions)).toThrow(
      TypeError,
    );
  });

  it('uses the configured leeway', async () => {
    const { clock, verify } = setUp({ leewaySeconds: 0, verifiedTokenCacheSize: 0 });
    const accessToken = await token({ exp: NOW_S + 60 });
    clock.now = (NOW_S + 59) * 1000 + 999;
    await expect(verify(accessToken)).resolves.toBeDefined();
    clock.now = (NOW_S + 60) * 1000;
    await expectRefused(verify(accessToken), 'invalid_token', 'expired');
  });
});
