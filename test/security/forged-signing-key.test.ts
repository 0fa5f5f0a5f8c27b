import { randomUUID } from 'node:crypto';
import {
  CompactEncrypt,
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  type JWK,
  SignJWT,
} from 'jose';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { openSecret, sealSecret } from '../../packages/broker/src/config/key-encryption.js';
import { rotateSigningKey } from '../../packages/broker/src/operations/signing-keys.js';
import type { SigningKeyRow } from '../../packages/broker/src/store/schema.js';
import { SEAL_LEGACY } from '../../packages/broker/src/tokens/keys.js';
import { BoundSession, createDpopProof } from '../../packages/client/src/index.js';
import {
  createAccessTokenVerifier,
  ReplayCache,
  remoteKeySource,
  TokenRefused,
} from '../../packages/pep/src/index.js';
import { decodeJws } from '../support/attacks.js';
import { injectFetch, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const PEP_URL = 'https://fw.example';
const PATH = '/rules';

/** An Ed25519 key pair of the attacker's, with its public JWK as a signing_keys row would hold it. */
async function attackerKey(): Promise<{ privateKey: CryptoKey; publicJwk: JWK; kid: string }> {
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { privateKey, kid, publicJwk: { ...jwk, kid, alg: 'EdDSA', use: 'sig' } };
}

/**
 * A database writer without the KEK plants signing keys: a row with their own public key, or an
 * existing row altered. The broker must neither publish nor trust any of them (issue 9, item 1).
 */
describeEachStore('forged signing keys', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  afterAll(() => fixture.cleanup());
  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
  });

  const db = () => b.ctx.store.db;
  const rows = () => db().selectFrom('signing_keys').selectAll().orderBy('kid').execute();
  const jwksKids = async () =>
    (
      (await b.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json() as { keys: JWK[] }
    ).keys.map((k) => k.kid);

  /** A broker-API token for the admin, as the broker would issue it, signed with `key` under `kid`. */
  async function adminToken(key: CryptoKey, kid: string): Promise<string> {
    const iat = Math.floor(b.clock.now() / 1000);
    return new SignJWT({
      client_id: b.admin.principal.id,
      tenant: b.tenant.id,
      scope: 'tether:api',
      tether_ckid: b.adminIdentity.key.kid,
    })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid })
      .setIssuer(PUBLIC_URL)
      .setSubject(b.admin.principal.id)
      .setAudience(PUBLIC_URL)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 300)
      .setJti(randomUUID())
      .sign(key);
  }

  /** Lists the tenant's principals with a bearer token: what a minted admin token would be used for. */
  const listPrincipals = async (token: string) => {
    const response = await b.app.inject({
      method: 'GET',
      url: '/v1/principals',
      headers: { authorization: `Bearer ${token}` },
    });
    return { status: response.statusCode, code: (response.json() as { code?: string }).code };
  };

  /** A live session at the firewall, and its PEP following the broker's JWKS. */
  async function firewall() {
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-1',
      justification: 'rules',
      duration: 1800,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    const session = await BoundSession.activate(s.operator.client, req.id);
    const pep = createAccessTokenVerifier({
      issuer: PUBLIC_URL,
      audience: PEP_URL,
      tenant: b.tenant.id,
      publicBaseUrl: PEP_URL,
      keys: remoteKeySource(`${PUBLIC_URL}/.well-known/jwks.json`, {
        fetch: injectFetch(b.app),
        now: () => b.clock.now(),
        minRefreshIntervalMs: 1,
      }),
      now: () => b.clock.now(),
      replayCache: new ReplayCache({ maxEntries: 1000, now: () => b.clock.now() }),
    });
    /** The session's token with its claims kept (a wider action), signed with `key` under `kid`. */
    const forge = async (key: CryptoKey, kid: string) => {
      const { header, payload } = decodeJws(session.tokens.accessToken);
      b.clock.advance(1); // a new jti-free token text each time: no verified-token cache hit
      return new SignJWT({ ...payload, jti: randomUUID() })
        .setProtectedHeader({ ...(header as { alg: string }), kid })
        .sign(key);
    };
    const present = async (token: string) =>
      pep.verify({
        method: 'POST',
        path: PATH,
        authorization: `DPoP ${token}`,
        dpop: await createDpopProof(session.key, {
          method: 'POST',
          url: `${PEP_URL}${PATH}`,
          accessToken: token,
          now: b.clock.now(),
        }),
      });
    return { forge, present };
  }

  async function pepRefuses(p: Promise<unknown>): Promise<string> {
    try {
      await p;
    } catch (err) {
      if (err instanceof TokenRefused) return err.code;
      throw err;
    }
    throw new Error('expected the PEP to refuse');
  }

  /**
   * Rotates, so that the attack can target a retiring key while a genuine one still signs, and
   * lets the clients' cached API tokens (signed by the old key) expire, so they sign in again.
   */
  async function rotate() {
    const rotated = await rotateSigningKey(b.ctx.store, b.ctx.kek, b.clock, 3600);
    await b.ctx.keys.load();
    b.clock.advance((b.ctx.config.apiTokenTtlSeconds + 1) * 1000);
    return rotated;
  }

  const rejectionLogs = (logs: string[] = b.logs) =>
    logs
      .filter((line) => line.includes('SIGNING KEY REJECTED'))
      .map((line) => JSON.parse(line) as { level: number; kid: string; reason: string });

  const metric = async (reason: string) => {
    const text = (await b.app.inject({ method: 'GET', url: '/metrics' })).body;
    const match = new RegExp(`^tether_signing_key_rejected_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(
      text,
    );
    return match ? Number(match[1]) : 0;
  };

  const rejectedRecords = async () =>
    (
      await s.admin.call<{
        records: { action: string; target: string; outcome: string; details: { reason: string } }[];
      }>('GET', '/v1/audit?limit=1000')
    ).records.filter((r) => r.action === 'signing_key.rejected');

  /** Everything the attack must show: not published, not trusted by the broker nor by a PEP, and reported. */
  async function expectRejected(attacker: { privateKey: CryptoKey; kid: string }, reason: string) {
    const genuine = b.ctx.keys.signer();
    await b.ctx.keys.load();
    expect(b.ctx.keys.signer().kid).toBe(genuine.kid);
    expect(await jwksKids()).not.toContain(attacker.kid);
    expect(b.ctx.keys.verificationKey(attacker.kid)).toBeUndefined();

    // The broker: the attacker's admin token is refused; the same claims under the real key pass.
    expect(await listPrincipals(await adminToken(attacker.privateKey, attacker.kid))).toEqual({
      status: 401,
      code: 'invalid_token',
    });
    expect((await listPrincipals(await adminToken(genuine.privateKey, genuine.kid))).status).toBe(200);

    // A PEP following the broker's JWKS refuses the attacker's session token; the genuine one passes.
    const fw = await firewall();
    expect(await pepRefuses(fw.present(await fw.forge(attacker.privateKey, attacker.kid)))).toBe(
      'invalid_token',
    );
    await expect(fw.present(await fw.forge(genuine.privateKey, genuine.kid))).resolves.toMatchObject({
      kid: genuine.kid,
    });

    // Loud: an error log line, the metric, an audit record; once per row, not once per load.
    await b.ctx.keys.load();
    const logged = rejectionLogs().filter((l) => l.reason === reason);
    expect(logged).toHaveLength(1);
    expect(logged[0]!.level).toBe(50);
    expect(await metric(reason)).toBe(1);
    expect((await rejectedRecords()).map((r) => [r.outcome, r.details.reason])).toEqual([
      ['refused', reason],
    ]);
    expect(await s.admin.call('GET', '/v1/audit/verify')).toMatchObject({ ok: true });
  }

  it("does not trust a row inserted with the attacker's public key and a garbage sealed key", async () => {
    const attacker = await attackerKey();
    const garbage = await new CompactEncrypt(new TextEncoder().encode('{}'))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
      .encrypt(new Uint8Array(32));
    await db()
      .insertInto('signing_keys')
      .values({
        kid: attacker.kid,
        alg: 'EdDSA',
        public_jwk: JSON.stringify(attacker.publicJwk),
        private_jwk_enc: garbage,
        state: 'active',
        // Newest active key: it would sign (and be published) if rows were trusted.
        created_at: b.clock.now() + 1000,
        retire_at: null,
        seal_version: 2,
      })
      .execute();
    await expectRejected(attacker, 'seal_does_not_open');
  });

  it("does not trust a row that carries another key's genuine sealed private key", async () => {
    const attacker = await attackerKey();
    const [real] = await rows();
    await db()
      .insertInto('signing_keys')
      .values({
        ...real!,
        kid: attacker.kid,
        public_jwk: JSON.stringify(attacker.publicJwk),
        state: 'retiring',
        retire_at: b.clock.now() + 3_600_000,
      })
      .execute();
    await expectRejected(attacker, 'seal_does_not_open');
  });

  it("does not trust a row whose public key was swapped for the attacker's (kid kept)", async () => {
    const [oldKid] = (await rotate()).retiring;
    const attacker = await attackerKey();
    // The attacker keeps the row's kid: tokens they sign name it.
    await db()
      .updateTable('signing_keys')
      .set({ public_jwk: JSON.stringify({ ...attacker.publicJwk, kid: oldKid }) })
      .where('kid', '=', oldKid!)
      .execute();
    await expectRejected({ privateKey: attacker.privateKey, kid: oldKid! }, 'kid_mismatch');
    // The altered key is out of service at once, for tokens it really signed too.
    expect(await jwksKids()).toEqual([b.ctx.keys.signer().kid]);
  });

  it('does not trust a row whose kid and public key were both swapped (the sealed key is bound to the old ones)', async () => {
    const [oldKid] = (await rotate()).retiring;
    const attacker = await attackerKey();
    await db()
      .updateTable('signing_keys')
      .set({ kid: attacker.kid, public_jwk: JSON.stringify(attacker.publicJwk) })
      .where('kid', '=', oldKid!)
      .execute();
    await expectRejected(attacker, 'seal_does_not_open');
  });

  it('does not trust a genuine row downgraded to the legacy (unbound) seal after start', async () => {
    const [oldKid] = (await rotate()).retiring;
    await db()
      .updateTable('signing_keys')
      .set({ seal_version: SEAL_LEGACY })
      .where('kid', '=', oldKid!)
      .execute();
    await b.ctx.keys.load();
    expect(await jwksKids()).toEqual([b.ctx.keys.signer().kid]);
    expect(rejectionLogs().map((l) => [l.kid, l.reason])).toEqual([[oldKid, 'legacy_seal']]);
    expect(await metric('legacy_seal')).toBe(1);
  });

  it('changes nothing when there is nothing forged: no rejection, no record, no metric', async () => {
    const before = await rows();
    await b.ctx.keys.load();
    expect(rejectionLogs()).toEqual([]);
    expect(await rejectedRecords()).toEqual([]);
    expect(await metric('seal_does_not_open')).toBe(0);
    expect(await rows()).toEqual(before);
  });

  describe('keys sealed before the binding existed (migration 0010)', () => {
    /** Restarts the broker on the same store and KEK, as an upgrade does. */
    const restart = () =>
      startTestBroker(b.ctx.store, {
        tenantName: 'after-restart',
        config: { dataDir: b.ctx.config.dataDir },
      });

    it('re-seals a genuine legacy key at start, with kid and public key bound, and keeps trusting it', async () => {
      const [real] = await rows();
      const kid = real!.kid;
      // Sealed as before migration 0010: the KEK alone, no binding.
      const privateJwk = await openSecret(b.ctx.kek, real!.private_jwk_enc, {
        signing_kid: kid,
        signing_jkt: kid,
      });
      const legacy = await sealSecret(b.ctx.kek, privateJwk);
      await db()
        .updateTable('signing_keys')
        .set({ private_jwk_enc: legacy, seal_version: SEAL_LEGACY })
        .where('kid', '=', kid)
        .execute();
      const again = await restart();
      const after = await db()
        .selectFrom('signing_keys')
        .selectAll()
        .where('kid', '=', kid)
        .executeTakeFirstOrThrow();
      expect(after.seal_version).toBe(2);
      expect(after.private_jwk_enc).not.toBe(legacy);
      expect(again.ctx.keys.signer().kid).toBe(kid);
      expect(again.ctx.keys.jwks().keys.map((k) => k.kid)).toEqual([kid]);
      // The new seal is bound: moved to another kid, it does not open.
      const attacker = await attackerKey();
      await db()
        .insertInto('signing_keys')
        .values({
          ...(after as SigningKeyRow),
          kid: attacker.kid,
          public_jwk: JSON.stringify(attacker.publicJwk),
        })
        .execute();
      await again.ctx.keys.load();
      expect(again.ctx.keys.jwks().keys.map((k) => k.kid)).toEqual([kid]);
      await again.close();
    });

    it('does not re-seal nor trust a forged legacy row at start', async () => {
      const attacker = await attackerKey();
      const [real] = await rows();
      await db()
        .insertInto('signing_keys')
        .values({
          ...real!,
          kid: attacker.kid,
          public_jwk: JSON.stringify(attacker.publicJwk),
          private_jwk_enc: real!.private_jwk_enc,
          created_at: b.clock.now() + 1000,
          seal_version: SEAL_LEGACY,
        })
        .execute();
      const again = await restart();
      const forged = await db()
        .selectFrom('signing_keys')
        .selectAll()
        .where('kid', '=', attacker.kid)
        .executeTakeFirstOrThrow();
      expect(forged.seal_version).toBe(SEAL_LEGACY);
      expect(again.ctx.keys.signer().kid).toBe(real!.kid);
      expect(again.ctx.keys.jwks().keys.map((k) => k.kid)).toEqual([real!.kid]);
      expect(rejectionLogs(again.logs).map((l) => [l.kid, l.reason])).toContainEqual([
        attacker.kid,
        'legacy_seal',
      ]);
      await again.close();
    });
  });
});
