import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  JWKS_DEFAULTS,
  JwksError,
  KeySourceUnavailableError,
  localKeySource,
  remoteKeySource,
} from './jwks.js';

interface TestKey {
  kid: string;
  publicJwk: JWK;
  privateJwk: JWK;
}

async function testKey(alg: 'Ed25519' | 'ES256' | 'RS256'): Promise<TestKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, publicJwk: { ...publicJwk, kid }, privateJwk: { ...(await exportJWK(privateKey)), kid } };
}

let ed: TestKey;
let ed2: TestKey;
let ec: TestKey;
let rsa: TestKey;

beforeAll(async () => {
  [ed, ed2, ec, rsa] = await Promise.all([
    testKey('Ed25519'),
    testKey('Ed25519'),
    testKey('ES256'),
    testKey('RS256'),
  ]);
});

async function refusal(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the JWKS was accepted').toBeInstanceOf(Error);
  return error as Error;
}

describe('localKeySource', () => {
  it('imports public Ed25519 and P-256 signing keys by kid', async () => {
    const source = await localKeySource({
      keys: [
        { ...ed.publicJwk, alg: 'EdDSA', use: 'sig' },
        { ...ec.publicJwk, alg: 'ES256', key_ops: ['verify'] },
      ],
    });
    const edKey = await source.getKey(ed.kid);
    const ecKey = await source.getKey(ec.kid);
    expect(edKey).toMatchObject({ type: 'public', algorithm: { name: 'Ed25519' } });
    expect(ecKey).toMatchObject({ type: 'public', algorithm: { name: 'ECDSA', namedCurve: 'P-256' } });
    expect(await source.getKey('no-such-kid')).toBeUndefined();
  });

  it.each([
    ['an encryption key (use enc)', () => ({ ...ed.publicJwk, use: 'enc' })],
    ['a key whose key_ops do not include verify', () => ({ ...ed.publicJwk, key_ops: ['encrypt'] })],
    ['an RSA key', () => rsa.publicJwk],
    ['an Ed25519 key labelled for another alg', () => ({ ...ed.publicJwk, alg: 'ES256' })],
    ['a P-256 key labelled for another alg', () => ({ ...ec.publicJwk, alg: 'ES384' })],
    ['a key without kid', () => ({ ...ed.publicJwk, kid: undefined })],
  ])('skips %s, keeping the usable keys', async (_name, make) => {
    const skipped = make();
    const source = await localKeySource({ keys: [skipped, ed2.publicJwk] });
    expect(await source.getKey(ed.kid)).toBeUndefined();
    expect(await source.getKey(rsa.kid)).toBeUndefined();
    expect(await source.getKey(ec.kid)).toBeUndefined();
    expect(await source.getKey(ed2.kid)).toBeDefined();
  });

  it.each([
    ['an Ed25519 private key', () => ed.privateJwk, 'member d'],
    ['an EC private key', () => ec.privateJwk, 'member d'],
    ['an RSA private key', () => rsa.privateJwk, 'member d'],
    ['a symmetric key', () => ({ kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }), 'member k'],
  ])('refuses the whole set when one entry holds %s', async (_name, make, member) => {
    const error = await refusal(localKeySource({ keys: [ed2.publicJwk, make()] }));
    expect(error).toBeInstanceOf(JwksError);
    expect(error.message).toContain('private key material');
    expect(error.message).toContain(member);
  });

  it.each([
    [
      'two keys with one kid',
      () => ({ keys: [ed.publicJwk, { ...ed2.publicJwk, kid: ed.kid }] }),
      'two signing keys',
    ],
    ['no keys array', () => ({ keys: 'none' }), 'keys array'],
    ['a non-object entry', () => ({ keys: [ed.publicJwk, 'key'] }), 'not a JSON object'],
    ['an Ed25519 key with a malformed x', () => ({ keys: [{ ...ed.publicJwk, x: 'AAAA' }] }), 'not a valid'],
    [
      'a P-256 point that is not on the curve',
      () => ({ keys: [{ ...ec.publicJwk, y: ec.publicJwk.x }] }),
      'not a valid',
    ],
  ])('refuses a set with %s', async (_name, make, message) => {
    const error = await refusal(localKeySource(make() as { keys: JWK[] }));
    expect(error).toBeInstanceOf(JwksError);
    expect(error.message).toContain(message);
  });
});

/** A real JWKS endpoint on 127.0.0.1 that counts the requests it answers. */
interface JwksServer {
  url: string;
  fetches: number;
  status: number;
  body: unknown;
  close(): Promise<void>;
}

const servers: Server[] = [];

async function startJwksServer(keys: JWK[]): Promise<JwksServer> {
  const state = {
    url: '',
    fetches: 0,
    status: 200,
    body: { keys } as unknown,
    close: async () => {},
  };
  const server = createServer((req, res) => {
    state.fetches += 1;
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    const text = typeof state.body === 'string' ? state.body : JSON.stringify(state.body);
    res.writeHead(state.status, { 'content-type': 'application/json' }).end(text);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  state.url = `http://127.0.0.1:${port}/.well-known/jwks.json`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return state;
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

function remote(server: JwksServer, options: { minRefreshIntervalMs?: number; cacheMaxAgeMs?: number } = {}) {
  const clock = { now: 1_700_000_000_000 };
  const source = remoteKeySource(server.url, { now: () => clock.now, ...options });
  return { clock, source };
}

const SECOND = 1000;

describe('remoteKeySource against a real JWKS endpoint', () => {
  it('fetches once and serves known keys from its cache', async () => {
    const server = await startJwksServer([ed.publicJwk, ec.publicJwk]);
    const { clock, source } = remote(server);
    expect(await source.getKey(ed.kid)).toMatchObject({ type: 'public' });
    expect(await source.getKey(ec.kid)).toMatchObject({ type: 'public' });
    clock.now += 60 * SECOND;
    expect(await source.getKey(ed.kid)).toBeDefined();
    expect(server.fetches).toBe(1);
  });

  it('shares one fetch among concurrent first callers', async () => {
    const server = await startJwksServer([ed.publicJwk]);
    const { source } = remote(server);
    const keys = await Promise.all(Array.from({ length: 20 }, () => source.getKey(ed.kid)));
    expect(keys.every((key) => key !== undefined)).toBe(true);
    expect(server.fetches).toBe(1);
  });

  it('refetches for an unknown kid at most once per minimum refresh interval', async () => {
    const server = await startJwksServer([ed.publicJwk]);
    const { clock, source } = remote(server);
    await source.getKey(ed.kid);
    clock.now += JWKS_DEFAULTS.minRefreshIntervalMs;
    // An attacker sends tokens with made-up kids as fast as it can.
    const unknown = await Promise.all(Array.from({ length: 50 }, (_, i) => source.getKey(`forged-${i}`)));
    expect(unknown.every((key) => key === undefined)).toBe(true);
    expect(server.fetches).toBe(2);
    clock.now += JWKS_DEFAULTS.minRefreshIntervalMs - 1;
    expect(await source.getKey('forged-again')).toBeUndefined();
    expect(server.fetches).toBe(2);
    clock.now += 1;
    expect(await source.getKey('forged-again')).toBeUndefined();
    expect(server.fetches).toBe(3);
    // Known keys never wait for the interval.
    expect(await source.getKey(ed.kid)).toBeDefined();
    expect(server.fetches).toBe(3);
  });

  it('picks up a rotated-in key on its first use, once the interval allows a refetch', async () => {
    const server = await startJwksServer([ed.publicJwk]);
    const { clock, source } = remote(server);
    await source.getKey(ed.kid);
    server.body = { keys: [ed.publicJwk, ed2.publicJwk] };
    // Right after a fetch, the new kid is not fetched for yet: the interval bounds refetches.
    expect(await source.getKey(ed2.kid)).toBeUndefined();
    expect(server.fetches).toBe(1);
    clock.now += JWKS_DEFAULTS.minRefreshIntervalMs;
    expect(await source.getKey(ed2.kid)).toMatchObject({ type: 'public' });
    expect(await source.getKey(ed.kid)).toBeDefined();
    expect(server.fetches).toBe(2);
  });

  it('drops a retired key at the next refresh, which starts at half the max age', async () => {
    const server = await startJwksServer([ed.publicJwk, ed2.publicJwk]);
    const { clock, source } = remote(server);
    await source.getKey(ed.kid);
    server.body = { keys: [ed2.publicJwk] };
    clock.now += JWKS_DEFAULTS.cacheMaxAgeMs / 2 - 1;
    expect(await source.getKey(ed.kid)).toBeDefined();
    expect(server.fetches).toBe(1);
    clock.now += 1;
    expect(await source.getKey(ed.kid)).toBeUndefined();
    expect(await source.getKey(ed2.kid)).toBeDefined();
    expect(server.fetches).toBe(2);
  });

  it('keeps known keys while the server is down, until the max age, then fails closed', async () => {
    const server = await startJwksServer([ed.publicJwk]);
    const { clock, source } = remote(server);
    await source.getKey(ed.kid);
    await server.close();
    clock.now += JWKS_DEFAULTS.cacheMaxAgeMs / 2;
    expect(await source.getKey(ed.kid)).toBeDefined(); // refresh failed; the keys are still in date
    clock.now += JWKS_DEFAULTS.cacheMaxAgeMs / 2 - 1;
    expect(await source.getKey(ed.kid)).toBeDefined();
    clock.now += 1;
    const error = await refusal(source.getKey(ed.kid));
    expect(error).toBeInstanceOf(KeySourceUnavailableError);
    expect(error.message).toContain(server.url);
    clock.now += 60 * 60 * SECOND;
    expect(await refusal(source.getKey(ed.kid))).toBeInstanceOf(KeySourceUnavailableError);
  });

  it('fails closed when it has never fetched the keys, and retries only after the interval', async () => {
    const server = await startJwksServer([ed.publicJwk]);
    server.status = 503;
    const { clock, source } = remote(server);
    expect(await refusal(source.getKey(ed.kid))).toBeInstanceOf(KeySourceUnavailableError);
    expect(await refusal(source.getKey(ed.kid))).toBeInstanceOf(KeySourceUnavailableError);
    expect(server.fetches).toBe(1);
    server.status = 200;
    clock.now += JWKS_DEFAULTS.minRefreshIntervalMs;
    expect(await source.getKey(ed.kid)).toBeDefined();
    expect(server.fetches).toBe(2);
  });

  it.each([
    ['an error status', (s: JwksServer) => Object.assign(s, { status: 500 })],
    ['a body that is not JSON', (s: JwksServer) => Object.assign(s, { body: '<html>' })],
    [
      'a JWKS holding a private key',
      (s: JwksServer) => Object.assign(s, { body: { keys: [ed2.privateJwk] } }),
    ],
    [
      'a JWKS larger than the limit',
      (s: JwksServer) =>
        Object.assign(s, { body: { keys: [ed2.publicJwk], pad: 'x'.repeat(JWKS_DEFAULTS.maxJwksBytes) } }),
    ],
  ])('ignores a refresh that answers %s, keeping the keys it had', async (_name, spoil) => {
    const server = await startJwksServer([ed.publicJwk]);
    const { clock, source } = remote(server);
    await source.getKey(ed.kid);
    spoil(server);
    clock.now += JWKS_DEFAULTS.minRefreshIntervalMs;
    expect(await source.getKey(ed2.kid)).toBeUndefined();
    expect(await source.getKey(ed.kid)).toBeDefined();
    expect(server.fetches).toBe(2);
    clock.now = clock.now - JWKS_DEFAULTS.minRefreshIntervalMs + JWKS_DEFAULTS.cacheMaxAgeMs;
    expect(await refusal(source.getKey(ed.kid))).toBeInstanceOf(KeySourceUnavailableError);
  });

  it('refuses unknown options and a refresh interval too long for the max age', () => {
    const now = () => 0;
    expect(() => remoteKeySource('http://127.0.0.1/jwks', { now, maxAge: 1 } as never)).toThrow(TypeError);
    expect(() => remoteKeySource('ftp://127.0.0.1/jwks', { now })).toThrow(TypeError);
    expect(() =>
      remoteKeySource('http://127.0.0.1/jwks', { now, minRefreshIntervalMs: 60_000, cacheMaxAgeMs: 100_000 }),
    ).toThrow(TypeError);
  });
});
