import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CryptoKey, calculateJwkThumbprint, importJWK, type JWK, SignJWT } from 'jose';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import type { Store } from '../../packages/broker/src/store/database.js';
import { run } from '../../packages/cli/src/program.js';
import { BrokerClient, createKeyProof, writeIdentity } from '../../packages/client/src/index.js';
import { signJws } from '../support/attacks.js';
import { type Actor, newKeyPair, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { freePort } from '../support/processes.js';
import { refusal } from '../support/refusal.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Issue 9 item 3, from the attacker's side: someone has stolen a broker-API token of a
 * principal (Bearer, or DPoP-bound together with its DPoP key) but not the principal's
 * registered private key. Adding a key of their own must be refused, so the theft ends when
 * the token does; and removing the key that minted a token, or disabling its principal, must
 * stop that token on its very next call, not at its expiry.
 */

const KEY_PROOF_TYP = 'tether-key-proof+jwt';

describeEachStore('a stolen broker-API token cannot take over its principal', (fixture) => {
  let store: Store;
  let b: TestBroker;
  let alice: Actor;

  beforeEach(async () => {
    store = await fixture.open();
    b = await startTestBroker(store);
    alice = await b.principal('alice');
  });
  afterEach(() => b.close());
  afterAll(() => fixture.cleanup());

  const keysUrl = () => `/v1/principals/${alice.caller.principal.id}/keys`;

  /** What a takeover would change: keys, spent proof jtis, principals and every audit head. */
  const footprint = async () => {
    const db = store.db;
    return JSON.stringify({
      keys: await db.selectFrom('principal_keys').selectAll().orderBy('kid').execute(),
      jtis: await db
        .selectFrom('client_assertion_jtis')
        .select(['principal_id', 'jti'])
        .orderBy('jti')
        .execute(),
      principals: await db.selectFrom('principals').selectAll().orderBy('id').execute(),
      heads: await db.selectFrom('audit_heads').selectAll().orderBy('tenant_id').execute(),
    });
  };

  /** The attacker's own call with the stolen token, exactly as they choose to send it. */
  const withStolen = async (token: string, method: 'GET' | 'POST', url: string, payload?: object) => {
    const res = await b.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(payload ? { payload } : {}),
    });
    return { status: res.statusCode, body: res.json() as { code?: string; detail?: string } };
  };

  /** A key proof with any claim or header changed, signed by `key` (alice's own by default). */
  const handmadeKeyProof = async (
    newKey: JWK,
    o: { claims?: Record<string, unknown>; header?: Record<string, unknown>; key?: JWK } = {},
  ) => {
    const signer = o.key ?? (alice.identity.key as JWK);
    const iat = Math.floor(b.clock.now() / 1000);
    return signJws(
      { alg: 'EdDSA', typ: KEY_PROOF_TYP, kid: await calculateJwkThumbprint(signer), ...o.header },
      {
        iss: alice.caller.principal.id,
        sub: alice.caller.principal.id,
        tenant: alice.caller.tenant.id,
        aud: `${PUBLIC_URL}${keysUrl()}`,
        new_key: await calculateJwkThumbprint(newKey),
        iat,
        exp: iat + 60,
        jti: randomUUID(),
        ...o.claims,
      },
      (await importJWK(signer, 'EdDSA')) as CryptoKey,
    );
  };

  it('refuses a stolen Bearer token adding a key to its principal: key_proof_required, nothing changed', async () => {
    const stolen = await alice.client.bearerToken();
    const attacker = await newKeyPair();
    const before = await footprint();
    for (const url of [keysUrl(), '/v1/principals/alice/keys']) {
      const res = await withStolen(stolen, 'POST', url, { jwk: attacker.publicJwk });
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('key_proof_required');
    }
    // A "proof" the attacker can make: signed by their own key, naming it or naming alice's.
    for (const header of [{}, { kid: alice.identity.key.kid }]) {
      const forged = await handmadeKeyProof(attacker.publicJwk, { key: attacker.privateJwk, header });
      const res = await withStolen(stolen, 'POST', keysUrl(), { jwk: attacker.publicJwk, proof: forged });
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('key_proof_required');
    }
    expect(await footprint()).toBe(before);
    // The token still works for what it was for: only the key addition needs more.
    expect((await withStolen(stolen, 'GET', '/v1/me')).status).toBe(200);
  });

  it('refuses a stolen DPoP-bound token with its DPoP key too: the proof needs a registered key', async () => {
    // alice.client holds a DPoP-bound token and its DPoP key: the attacker has both, and no identity key.
    const attacker = await newKeyPair();
    await alice.client.call('GET', '/v1/me');
    const before = await footprint();
    const err = await refusal(alice.client.call('POST', keysUrl(), { jwk: attacker.publicJwk }));
    expect(err.status).toBe(403);
    expect(err.code).toBe('key_proof_required');
    expect(await footprint()).toBe(before);
  });

  it('refuses a proof made for another key, another principal, another tenant, a wrong audience or typ', async () => {
    const stolen = await alice.client.bearerToken();
    const wanted = await newKeyPair();
    const other = await newKeyPair();
    const bob = await b.principal('bob');
    const before = await footprint();
    const cases: [string, string][] = [
      // A legitimate proof alice made for another key, intercepted and reused for the attacker's.
      ['the key proof is for another key (claim new_key)', await handmadeKeyProof(other.publicJwk)],
      [
        'the key proof is for another tenant',
        await handmadeKeyProof(wanted.publicJwk, { claims: { tenant: 'ten_x' } }),
      ],
      [
        'the key proof aud claim is invalid (check failed)',
        await handmadeKeyProof(wanted.publicJwk, {
          claims: { aud: `${PUBLIC_URL}/v1/principals/${bob.caller.principal.id}/keys` },
        }),
      ],
      [
        'the key proof typ claim is invalid',
        await handmadeKeyProof(wanted.publicJwk, { header: { typ: 'JWT' } }),
      ],
      [
        'the key proof iss claim is invalid (unexpected "iss" claim value)',
        await handmadeKeyProof(wanted.publicJwk, { claims: { iss: bob.caller.principal.id } }),
      ],
      // Bob's proof (his own key) is not one of alice's keys.
      [
        'the key proof is not signed by a key registered for this principal',
        await handmadeKeyProof(wanted.publicJwk, { key: bob.identity.key as JWK }),
      ],
      ['the key proof is not a JWS', 'not-a-jws'],
    ];
    for (const [detail, proof] of cases) {
      const res = await withStolen(stolen, 'POST', keysUrl(), { jwk: wanted.publicJwk, proof });
      expect(res.status, detail).toBe(403);
      expect(res.body, detail).toMatchObject({ code: 'key_proof_required' });
      expect(res.body.detail, detail).toMatch(new RegExp(`^${detail.split('(')[0]?.trim()}`));
    }
    expect(await footprint()).toBe(before);
  });

  it('accepts a fresh proof by a registered key once; a replayed or expired proof is refused', async () => {
    const added = await newKeyPair();
    const proof = await createKeyProof(alice.identity, {
      brokerUrl: PUBLIC_URL,
      newKey: added.publicJwk,
      now: b.clock.now(),
    });
    const key = await alice.client.call<{ kid: string }>('POST', keysUrl(), { jwk: added.publicJwk, proof });
    expect(key.kid).toBe(await calculateJwkThumbprint(added.publicJwk));
    const admin = b.client(b.adminIdentity);
    const { records } = await admin.call<{ records: { action: string; details: Record<string, unknown> }[] }>(
      'GET',
      '/v1/audit?limit=1000',
    );
    expect(records.find((r) => r.action === 'principal.key.added')?.details).toEqual({
      kid: key.kid,
      proven_by: alice.identity.key.kid,
    });

    // An admin takes the key away again; the same proof, replayed, does not bring it back.
    await admin.call('DELETE', `${keysUrl()}/${key.kid}`);
    const stolen = await alice.client.bearerToken();
    const before = await footprint();
    const replay = await withStolen(stolen, 'POST', keysUrl(), { jwk: added.publicJwk, proof });
    expect(replay).toMatchObject({
      status: 403,
      body: { code: 'key_proof_required', detail: 'the key proof has already been used (jti replay)' },
    });
    expect(await footprint()).toBe(before);

    // A proof kept for later: refused once past its life (60 s) and the clock tolerance (30 s).
    const kept = await createKeyProof(alice.identity, {
      brokerUrl: PUBLIC_URL,
      newKey: added.publicJwk,
      now: b.clock.now(),
    });
    b.clock.advance(91_000);
    const later = await footprint();
    const expired = await withStolen(stolen, 'POST', keysUrl(), { jwk: added.publicJwk, proof: kept });
    expect(expired).toMatchObject({
      status: 403,
      body: { code: 'key_proof_required', detail: 'the key proof has expired' },
    });
    // A proof declaring a life longer than client assertions may have is refused while "valid".
    const long = await handmadeKeyProof(added.publicJwk, {
      claims: { exp: Math.floor(b.clock.now() / 1000) + 3600 },
    });
    expect(await withStolen(stolen, 'POST', keysUrl(), { jwk: added.publicJwk, proof: long })).toMatchObject({
      status: 403,
      body: { code: 'key_proof_required', detail: 'the key proof lifetime exceeds 300 s' },
    });
    expect(await footprint()).toBe(later);
  });

  it('lets `tether principal add-key` add a key to oneself: the CLI makes the proof with its identity key', async () => {
    // A broker on a real loopback port, for the real CLI verb (the in-process program, global fetch).
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const served = await startTestBroker(await fixture.open(), { config: { publicUrl: url } });
    try {
      // The CLI signs with the real clock: the broker's manual clock joins it.
      served.clock.advance(Date.now() - served.clock.now());
      await served.app.listen({ port, host: '127.0.0.1' });
      const bob = await served.principal('bob');
      const dir = mkdtempSync(join(tmpdir(), 'tether-cli-key-'));
      const identityPath = join(dir, 'bob.json');
      writeIdentity(identityPath, { ...bob.identity, broker: url });
      const added = await newKeyPair();
      const jwkPath = join(dir, 'new.jwk.json');
      writeFileSync(jwkPath, JSON.stringify(added.publicJwk));
      const cli = (...args: string[]) =>
        run(['node', 'tether', '--json', '--identity', identityPath, ...args]);
      expect(await cli('principal', 'add-key', 'bob', jwkPath)).toBe(0);
      const kids = await served.ctx.store.db
        .selectFrom('principal_keys')
        .select('kid')
        .where('principal_id', '=', bob.caller.principal.id)
        .execute();
      expect(kids.map((k) => k.kid).sort()).toEqual(
        [bob.identity.key.kid, await calculateJwkThumbprint(added.publicJwk)].sort(),
      );
      // The new key is a working identity: it logs in and reads its principal.
      const second = new BrokerClient({
        identity: { ...bob.identity, broker: url, key: added.privateJwk as Record<string, unknown> },
      });
      expect((await second.call<{ principal: { id: string } }>('GET', '/v1/me')).principal.id).toBe(
        bob.caller.principal.id,
      );
      rmSync(dir, { recursive: true, force: true });
    } finally {
      await served.close();
    }
  });

  it('lets an admin add a key to a principal without a proof', async () => {
    const added = await newKeyPair();
    const key = await b
      .client(b.adminIdentity)
      .call<{ kid: string }>('POST', keysUrl(), { jwk: added.publicJwk });
    expect(key.kid).toBe(await calculateJwkThumbprint(added.publicJwk));
  });

  it('refuses every token minted with a key from the very next call once the key is removed', async () => {
    // Alice has two keys; a client of each gets tokens (Bearer and DPoP-bound).
    const second = await newKeyPair();
    const admin = b.client(b.adminIdentity);
    await admin.call('POST', keysUrl(), { jwk: second.publicJwk });
    const firstBearer = await alice.client.bearerToken();
    await alice.client.call('GET', '/v1/me'); // its DPoP-bound token
    const viaSecond = b.client({ ...alice.identity, key: second.privateJwk as Record<string, unknown> });
    const secondBearer = await viaSecond.bearerToken();
    expect((await withStolen(firstBearer, 'GET', '/v1/me')).status).toBe(200);

    await admin.call('DELETE', `${keysUrl()}/${alice.identity.key.kid}`);
    // No clock movement: the tokens are far from their expiry, and refused now.
    expect(await withStolen(firstBearer, 'GET', '/v1/me')).toEqual({
      status: 401,
      body: expect.objectContaining({
        code: 'invalid_token',
        detail: 'the key that obtained this token is no longer registered; the token is revoked',
      }),
    });
    const bound = await refusal(alice.client.call('GET', '/v1/me'));
    expect([bound.status, bound.code]).toEqual([401, 'invalid_token']);
    // A token the other key obtained is untouched.
    expect((await withStolen(secondBearer, 'GET', '/v1/me')).status).toBe(200);
    const { records } = await admin.call<{ records: { action: string; details: Record<string, unknown> }[] }>(
      'GET',
      '/v1/audit?limit=1000',
    );
    expect(records.find((r) => r.action === 'principal.key.removed')?.details).toEqual({
      kid: alice.identity.key.kid,
      api_tokens_revoked: true,
    });
  });

  it('refuses the tokens of a disabled principal from the very next call', async () => {
    const bearer = await alice.client.bearerToken();
    await alice.client.call('GET', '/v1/me');
    await b.client(b.adminIdentity).call('PATCH', `/v1/principals/alice`, { enabled: false });
    expect(await withStolen(bearer, 'GET', '/v1/me')).toMatchObject({
      status: 403,
      body: { code: 'principal_disabled' },
    });
    expect((await refusal(alice.client.call('GET', '/v1/me'))).code).toBe('principal_disabled');
    // Nor can the disabled principal's token add a key with a valid proof.
    const added = await newKeyPair();
    const proof = await createKeyProof(alice.identity, {
      brokerUrl: PUBLIC_URL,
      newKey: added.publicJwk,
      now: b.clock.now(),
    });
    expect((await withStolen(bearer, 'POST', keysUrl(), { jwk: added.publicJwk, proof })).body.code).toBe(
      'principal_disabled',
    );
  });

  it('refuses a token that does not name the key that obtained it (signed by the broker itself)', async () => {
    const signer = b.ctx.keys.signer();
    const iat = Math.floor(b.clock.now() / 1000);
    const token = await new SignJWT({
      client_id: alice.caller.principal.id,
      tenant: alice.caller.tenant.id,
      scope: 'tether:api',
    })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: signer.kid })
      .setIssuer(PUBLIC_URL)
      .setSubject(alice.caller.principal.id)
      .setAudience(PUBLIC_URL)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 600)
      .setJti(randomUUID())
      .sign(signer.privateKey);
    expect(await withStolen(token, 'GET', '/v1/me')).toEqual({
      status: 401,
      body: expect.objectContaining({
        code: 'invalid_token',
        detail: 'the access token does not name the key that obtained it; get a new one',
      }),
    });
  });
});
