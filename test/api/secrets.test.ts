import { randomUUID } from 'node:crypto';
import type { IdentityFile } from '@tether-broker/protocol';
import type { InjectOptions } from 'fastify';
import { base64url, type CryptoKey, calculateJwkThumbprint, importJWK, type JWK, SignJWT } from 'jose';
import { sql } from 'kysely';
import { afterAll, expect, it } from 'vitest';
import { loadKek, openSecret } from '../../packages/broker/src/config/key-encryption.js';
import { bindingOf } from '../../packages/broker/src/tokens/signing-key-seal.js';
import { BrokerClient, BrokerError } from '../../packages/client/src/index.js';
import { injectFetch, newKeyPair, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { setUpScenario } from '../support/scenario.js';
import { describeEachStore, storeTableNames } from '../support/stores.js';

/** A secret, and the ways its bytes could be written down. */
interface Secret {
  what: string;
  forms: string[];
}

function secretOf(what: string, b64url: string): Secret {
  const bytes = Buffer.from(b64url, 'base64url');
  const b64 = bytes.toString('base64');
  return {
    what,
    forms: [b64url, b64, b64.replace(/=+$/, ''), bytes.toString('hex')],
  };
}

/** Where a secret was found, if anywhere: each haystack is searched for every form. */
function findings(secrets: Secret[], haystacks: Record<string, string>): string[] {
  const found: string[] = [];
  for (const secret of secrets) {
    for (const [where, text] of Object.entries(haystacks)) {
      const lower = text.toLowerCase();
      for (const form of secret.forms) {
        if (text.includes(form) || lower.includes(form.toLowerCase())) {
          found.push(`${secret.what} in ${where}`);
          break;
        }
      }
    }
  }
  return found;
}

/** Any JWK-looking object with a private member, anywhere in a JSON value. */
function privateJwksIn(value: unknown, path = '$'): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => privateJwksIn(v, `${path}[${i}]`));
  if (value === null || typeof value !== 'object') return [];
  const o = value as Record<string, unknown>;
  const here = 'kty' in o && ['d', 'p', 'q', 'k'].some((m) => m in o) ? [path] : [];
  return [...here, ...Object.entries(o).flatMap(([k, v]) => privateJwksIn(v, `${path}.${k}`))];
}

const signatureOf = (jwt: string) => jwt.split('.')[2]!;

describeEachStore("principals' and the broker's secrets", (fixture) => {
  let b: TestBroker;
  afterAll(() => fixture.cleanup());

  it('never appear in the store, the logs, API answers or audit records', async () => {
    b = await startTestBroker(await fixture.open());

    // Every API answer, every assertion sent and every token issued, as a client sees them.
    const answers: { url: string; status: number; body: string }[] = [];
    const assertions: string[] = [];
    const accessTokens: string[] = [];
    const direct = injectFetch(b.app);
    const recording = (async (input: string | URL | Request, init?: RequestInit) => {
      const url = String(input instanceof Request ? input.url : input);
      if (url.endsWith('/oauth/token') && typeof init?.body === 'string') {
        const assertion = new URLSearchParams(init.body).get('client_assertion');
        if (assertion) assertions.push(assertion);
      }
      const response = await direct(input, init);
      const body = await response.clone().text();
      answers.push({ url, status: response.status, body });
      if (url.endsWith('/oauth/token') && response.ok)
        accessTokens.push(JSON.parse(body).access_token as string);
      return response;
    }) as typeof fetch;
    b.client = (identity: IdentityFile) =>
      new BrokerClient({ identity, fetch: recording, now: () => b.clock.now() });
    const inject = async (options: InjectOptions & { url: string }) => {
      const res = await b.app.inject(options);
      answers.push({ url: options.url, status: res.statusCode, body: res.body });
      return res;
    };

    // --- a realistic day ---------------------------------------------------------------------
    const s = await setUpScenario(b);
    const actors = [s.operator, s.outsider, s.pipeline, ...s.approvers];
    const as = (identity: IdentityFile) => b.client(identity);
    const olivia = as(s.operator.identity);
    const approved = await olivia.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-42',
      justification: 'rotate edge rules',
      duration: 1800,
    });
    await as(s.approvers[0]!.identity).call('POST', `/v1/requests/${approved.id}/approve`, { comment: 'ok' });
    const denied = await olivia.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-43',
      justification: 'again',
    });
    await as(s.approvers[1]!.identity).call('POST', `/v1/requests/${denied.id}/deny`, { comment: 'no' });
    await as(s.outsider.identity)
      .call('POST', `/v1/requests/${denied.id}/approve`)
      .catch((err: unknown) => expect(err).toBeInstanceOf(BrokerError));
    await as(s.pipeline.identity).call('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-7',
      justification: 'release',
      duration: 900,
    });
    const cancelled = await olivia.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'CHG-1',
      justification: 'oops',
    });
    await olivia.call('POST', `/v1/requests/${cancelled.id}/cancel`, { reason: 'not needed' });

    // Reads of everything that could carry a key.
    const admin = as(b.adminIdentity);
    await admin.call('GET', '/v1/me');
    await admin.call('GET', '/v1/principals');
    for (const a of actors) await admin.call('GET', `/v1/principals/${a.caller.principal.name}`);
    await admin.call('GET', `/v1/principals/${b.admin.principal.name}`);
    await admin.call('GET', '/v1/requests');
    await admin.call('GET', `/v1/requests/${approved.id}`);
    await admin.call('GET', '/v1/audit?limit=1000');
    await admin.call('GET', '/v1/audit/verify');
    await inject({ method: 'GET', url: '/.well-known/jwks.json' });
    await inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });

    // An admin pastes a private key where the public one belongs: refused, and echoed nowhere.
    const pasted = await newKeyPair();
    const pastedRefusal = await admin
      .call('POST', '/v1/principals', { name: 'paste', kind: 'service', keys: [pasted.privateJwk] })
      .catch((err: unknown) => err as BrokerError);
    expect(pastedRefusal).toMatchObject({ status: 400, code: 'invalid_key' });
    const pastedKey = await admin
      .call('POST', `/v1/principals/olivia/keys`, { jwk: pasted.privateJwk })
      .catch((err: unknown) => err as BrokerError);
    expect(pastedKey).toMatchObject({ status: 400, code: 'invalid_key' });

    // Refused logins: a forgery, a replay, and a bearer token that is not ours.
    const forger = await newKeyPair();
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: s.operator.identity.key.kid as string })
      .setIssuer(s.operator.identity.principal)
      .setSubject(s.operator.identity.principal)
      .setAudience(`${PUBLIC_URL}/oauth/token`)
      .setIssuedAt(Math.floor(b.clock.now() / 1000))
      .setExpirationTime(Math.floor(b.clock.now() / 1000) + 60)
      .setJti(randomUUID())
      .sign((await importJWK(forger.privateJwk, 'EdDSA')) as CryptoKey);
    const login = (assertion: string) => {
      assertions.push(assertion);
      return inject({
        method: 'POST',
        url: '/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({
          grant_type: 'client_credentials',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
        }).toString(),
      });
    };
    expect((await login(forged)).statusCode).toBe(401);
    const replayed = assertions[0]!;
    expect((await login(replayed)).json()).toMatchObject({ error: 'invalid_client' });
    const stolen = accessTokens[0]!;
    const tampered = `${stolen.slice(0, -4)}AAAA`;
    expect(
      (await inject({ method: 'GET', url: '/v1/me', headers: { authorization: `Bearer ${tampered}` } }))
        .statusCode,
    ).toBe(401);

    // --- everything that was written down --------------------------------------------------------
    const dump: Record<string, string> = {};
    for (const name of await storeTableNames(b.ctx.store)) {
      const t = { name };
      const result = await sql<Record<string, unknown>>`select * from ${sql.table(t.name)}`.execute(
        b.ctx.store.db,
      );
      dump[`table ${t.name}`] = JSON.stringify(result.rows);
    }
    const auditRows = dump['table audit_records']!;
    const logs = b.logs.join('\n');
    const answerText = answers.map((a) => a.body).join('\n');

    // The haystacks are real: every table, plenty of log lines and answers, and they contain
    // what they should (positive controls for the search itself).
    for (const table of ['principal_keys', 'audit_records', 'signing_keys', 'client_assertion_jtis'])
      expect(Object.keys(dump)).toContain(`table ${table}`);
    expect(JSON.parse(auditRows).length).toBeGreaterThan(30);
    expect(b.logs.length).toBeGreaterThan(50);
    expect(answers.length).toBeGreaterThan(40);
    expect(assertions.length).toBeGreaterThan(7);
    expect(accessTokens.length).toBeGreaterThan(6);
    const oliviaPublic = secretOf('olivia public x', s.operator.identity.key.x as string);
    expect(findings([oliviaPublic], { keys: dump['table principal_keys']!, answers: answerText })).toEqual([
      'olivia public x in keys',
      'olivia public x in answers',
    ]);
    expect(answerText).toContain(signatureOf(accessTokens[0]!));
    expect(logs).toContain('oauth request refused');

    // --- the secrets --------------------------------------------------------------------------
    const principalKeys: Secret[] = [
      secretOf('admin private key', b.adminIdentity.key.d as string),
      ...actors.map((a) => secretOf(`${a.caller.principal.name} private key`, a.identity.key.d as string)),
      secretOf('pasted private key', pasted.privateJwk.d as string),
    ];
    const kek = loadKek({ dataDir: b.ctx.config.dataDir });
    const signingRows = await b.ctx.store.db.selectFrom('signing_keys').selectAll().execute();
    expect(signingRows.length).toBeGreaterThan(0);
    const brokerKeys: Secret[] = [];
    for (const row of signingRows) {
      // Sealed: a compact JWE (dir + A256GCM) under the KEK, never the JWK itself.
      expect(row.private_jwk_enc.split('.')).toHaveLength(5);
      const header = JSON.parse(
        new TextDecoder().decode(base64url.decode(row.private_jwk_enc.split('.')[0]!)),
      );
      expect(header).toMatchObject({ alg: 'dir', enc: 'A256GCM' });
      // Bound to its row (kid and public-key thumbprint, as AEAD associated data): see test/security/forged-signing-key.test.ts.
      const binding = bindingOf(row.kid, await calculateJwkThumbprint(JSON.parse(row.public_jwk) as JWK));
      const opened = JSON.parse(await openSecret(kek, row.private_jwk_enc, binding)) as JWK;
      expect(opened.d).toEqual(expect.any(String));
      expect(row.private_jwk_enc).not.toContain(opened.d);
      brokerKeys.push(secretOf(`broker signing key ${row.kid}`, opened.d!));
    }
    const kekSecret = secretOf('key-encryption key', base64url.encode(kek.key));

    // The search finds a secret in any of its encodings (a planted leak is caught).
    const planted = principalKeys[0]!;
    for (const form of planted.forms)
      expect(findings([planted], { planted: `{"x":"${form.toUpperCase()}"}` })).toEqual([
        'admin private key in planted',
      ]);

    const everywhere = { ...dump, logs, answers: answerText };
    expect(findings([...principalKeys, ...brokerKeys, kekSecret], everywhere)).toEqual([]);
    // No answer carries a JWK with private members, whatever its encoding.
    const privateInAnswers = answers.flatMap((a) => {
      try {
        return privateJwksIn(JSON.parse(a.body)).map((p) => `${a.url} ${p}`);
      } catch {
        return [];
      }
    });
    expect(privateInAnswers).toEqual([]);

    // Credentials in transit are never written down: not in logs, audit records or any table.
    const credentials: Secret[] = [
      ...assertions.map((a, i) => ({ what: `client assertion #${i}`, forms: [signatureOf(a)] })),
      ...accessTokens.map((t, i) => ({ what: `access token #${i}`, forms: [signatureOf(t)] })),
    ];
    expect(findings(credentials, { ...dump, logs, 'audit records': auditRows })).toEqual([]);
  });
});
