import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isLoopbackHost } from '@tether-broker/protocol';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { pino } from 'pino';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBroker, type RunningBroker, startBroker } from '../../packages/broker/src/broker.js';
import {
  type ConfigInput,
  configFromEnvironment,
  resolveConfig,
} from '../../packages/broker/src/config/config.js';
import { bootstrapTenant } from '../../packages/broker/src/records/bootstrap.js';
import { createPrincipal } from '../../packages/broker/src/records/principals.js';
import {
  insecureGatewayUrls,
  resolveGatewayConfig,
  validateGatewayConfig,
} from '../../packages/cli/src/gateway/config.js';
import { createGateway, type Gateway } from '../../packages/cli/src/gateway/server.js';
import { BrokerLink } from '../../packages/pep/src/index.js';
import { collect, freePort, isolatedEnv, MAIN, ROOT, waitForHealth } from '../support/processes.js';

/**
 * Issue 9, item 9, from the attacker's side: a network observer reading tokens off plain
 * http, a PEP impostor without a client certificate, a local user reading the data
 * directory. (Escape sequences through the CLI: terminal-escape-injection.test.ts.)
 */

const work = mkdtempSync(join(tmpdir(), 'tether-tls-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const pki = join(work, 'pki');
const pem = (name: string) => readFileSync(join(pki, name));

/** A private CA and certificates signed by it, made with the openssl CLI (Node cannot issue X.509). */
function makePki(): void {
  mkdirSync(pki);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: pki, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const ca = (name: string) =>
    openssl(
      'req',
      '-x509',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-subj',
      `/CN=${name}`,
      '-days',
      '2',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign',
    );
  const leaf = (name: string, issuer: string, extensions: string) => {
    writeFileSync(join(pki, `${name}.ext`), `${extensions}\n`);
    openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${issuer}.crt`,
      '-CAkey',
      `${issuer}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    );
  };
  ca('server-ca');
  leaf('server', 'server-ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth');
  ca('client-ca');
  leaf('pep', 'client-ca', 'extendedKeyUsage=clientAuth');
  ca('rogue-ca');
  leaf('rogue', 'rogue-ca', 'extendedKeyUsage=clientAuth');
}

/** A `fetch` with its own TLS trust and, optionally, a client certificate: what a PEP is given. */
function tlsFetch(connect: { ca: Buffer; cert?: Buffer; key?: Buffer }): typeof fetch {
  const dispatcher = new Agent({ connect });
  return ((input: string | URL, init?: RequestInit) =>
    undiciFetch(input, { ...(init as object), dispatcher })) as unknown as typeof fetch;
}

const silent = pino({ level: 'silent' });

async function runningBroker(config: Partial<ConfigInput>): Promise<RunningBroker> {
  const ctx = await openBroker({
    config: { host: '127.0.0.1', dataDir: mkdtempSync(join(work, 'data-')), logLevel: 'silent', ...config },
    logger: silent,
  });
  try {
    return await startBroker(ctx);
  } catch (err) {
    await ctx.store.close();
    throw err;
  }
}

/** The cause code of a failed fetch (TLS and socket errors are nested). */
async function fetchFailure(call: Promise<unknown>): Promise<string> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e as { cause?: { code?: string } },
  );
  expect(err, 'the request must fail').toBeDefined();
  return String(err?.cause?.code ?? err);
}

beforeAll(makePki);

describe('TLS: the broker serves HTTPS with tlsCert / tlsKey', () => {
  let broker: RunningBroker;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    broker = await runningBroker({ port, tlsCert: join(pki, 'server.crt'), tlsKey: join(pki, 'server.key') });
  });
  afterAll(() => broker?.stop());

  it('answers /healthz over HTTPS to a client that trusts the CA; the public URL defaults to https', async () => {
    expect(broker.url).toBe(`https://127.0.0.1:${port}`);
    expect(broker.ctx.config.publicUrl).toBe(`https://127.0.0.1:${port}`);
    const response = await tlsFetch({ ca: pem('server-ca.crt') })(`${broker.url}/healthz`);
    expect(response.status).toBe(200);
  });

  it('a client that does not trust the CA refuses the certificate', async () => {
    const code = await fetchFailure(fetch(`${broker.url}/healthz`));
    expect(code).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER_CERT/);
  });

  it('plain http to the TLS port gets no answer: nothing is served in clear', async () => {
    const code = await fetchFailure(fetch(`http://127.0.0.1:${port}/healthz`));
    expect(code).toMatch(/UND_ERR_SOCKET|ECONNRESET|HPE_/);
  });

  it('NODE_EXTRA_CA_CERTS makes the global fetch (PEP, SDK, CLI) trust a private CA', async () => {
    const script = `fetch(${JSON.stringify(`${broker.url}/healthz`)}).then((r) => console.log(r.status), (e) => console.log('failed', e.cause?.code))`;
    const run = (env: NodeJS.ProcessEnv) =>
      collect(spawn(process.execPath, ['-e', script], { env, stdio: ['ignore', 'pipe', 'pipe'] })).exited;
    const trusted = await run(isolatedEnv({ NODE_EXTRA_CA_CERTS: join(pki, 'server-ca.crt') }));
    expect(trusted.stdout.trim()).toBe('200');
    const untrusted = await run(isolatedEnv({ NODE_EXTRA_CA_CERTS: '' }));
    expect(untrusted.stdout.trim()).toMatch(/^failed /);
  });
});

describe('TLS: the gateway serves HTTPS with tls: { cert, key, client_ca }', () => {
  let gateway: Gateway;
  let origin: string;
  beforeAll(async () => {
    const port = await freePort();
    origin = `https://127.0.0.1:${port}`;
    const { privateKey } = await generateKeyPair('Ed25519', { extractable: true });
    const key = { ...(await exportJWK(privateKey)), kid: 'k', alg: 'EdDSA' };
    const settings = validateGatewayConfig(
      {
        listen: { host: '127.0.0.1', port },
        public_url: origin,
        upstream: 'http://127.0.0.1:9',
        // Nothing listens there: the gateway's own TLS is what is tested, not its broker.
        broker: 'http://127.0.0.1:9',
        tls: { cert: 'server.crt', key: 'server.key', client_ca: 'client-ca.crt' },
        routes: [{ method: 'GET', path: '/x', action: 'a:read', resource: 'r' }],
      },
      pki,
    );
    const identity = { broker: 'http://127.0.0.1:9', tenant: 'ten_1', principal: 'prn_1', key };
    gateway = await createGateway(resolveGatewayConfig(settings, identity));
    expect(await gateway.listen()).toBe(origin);
  });
  afterAll(() => gateway?.close());

  it('a client with a certificate from client_ca is served over HTTPS', async () => {
    const client = tlsFetch({ ca: pem('server-ca.crt'), cert: pem('pep.crt'), key: pem('pep.key') });
    const response = await client(`${origin}/healthz`);
    // Not yet fresh (no broker): refused, but refused by the gateway, over TLS.
    expect([200, 503]).toContain(response.status);
  });

  it('a client without one, or with one from another CA, and plain http are refused', async () => {
    await fetchFailure(tlsFetch({ ca: pem('server-ca.crt') })(`${origin}/healthz`));
    await fetchFailure(
      tlsFetch({ ca: pem('server-ca.crt'), cert: pem('rogue.crt'), key: pem('rogue.key') })(
        `${origin}/healthz`,
      ),
    );
    await fetchFailure(fetch(`${origin.replace('https:', 'http:')}/healthz`));
  });
});

describe('mutual TLS: with tlsClientCa, a PEP without a certificate from that CA is refused', () => {
  let broker: RunningBroker;
  let identity: { principal: string; key: Record<string, unknown> };
  const auditCount = async () =>
    Number(
      (
        await broker.ctx.store.db
          .selectFrom('audit_records')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const link = (fetchImpl: typeof fetch) =>
    new BrokerLink({ broker: broker.url, identity, fetch: fetchImpl, now: Date.now });

  beforeAll(async () => {
    const port = await freePort();
    broker = await runningBroker({
      port,
      tlsCert: join(pki, 'server.crt'),
      tlsKey: join(pki, 'server.key'),
      tlsClientCa: join(pki, 'client-ca.crt'),
    });
    const boot = await bootstrapTenant(broker.ctx.store, broker.ctx.clock, {
      tenantName: 'acme',
      adminName: 'root-admin',
    });
    const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const pep = await createPrincipal(
      broker.ctx,
      { principal: boot.admin, tenant: boot.tenant },
      {
        name: 'edge-pep',
        kind: 'service',
        roles: ['pep'],
        attributes: {},
        keys: [publicJwk as Record<string, unknown>],
      },
    );
    identity = { principal: pep.id, key: { ...(await exportJWK(privateKey)), kid, alg: 'EdDSA' } };
  });
  afterAll(() => broker?.stop());

  it('a PEP presenting no client certificate is refused at the handshake; nothing is recorded', async () => {
    const before = await auditCount();
    const code = await fetchFailure(link(tlsFetch({ ca: pem('server-ca.crt') })).token());
    expect(code).toMatch(/ECONNRESET|UND_ERR_SOCKET|CERTIFICATE_REQUIRED|EPROTO/i);
    expect(await auditCount()).toBe(before);
  });

  it('a PEP presenting a certificate from another CA is refused; nothing is recorded', async () => {
    const before = await auditCount();
    const rogue = tlsFetch({ ca: pem('server-ca.crt'), cert: pem('rogue.crt'), key: pem('rogue.key') });
    const code = await fetchFailure(link(rogue).token());
    expect(code).toMatch(/ECONNRESET|UND_ERR_SOCKET|UNKNOWN_CA|EPROTO/i);
    expect(await auditCount()).toBe(before);
  });

  it('the PEP with its certificate from the client CA gets its token and follows the revocation stream; stop() ends it', async () => {
    const pep = tlsFetch({ ca: pem('server-ca.crt'), cert: pem('pep.crt'), key: pem('pep.key') });
    const channel = link(pep);
    const token = await channel.token();
    expect(token.split('.')).toHaveLength(3);
    const stream = await pep(`${broker.url}/v1/events`, {
      headers: { ...(await channel.authHeaders('GET', '/v1/events')), accept: 'text/event-stream' },
    });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toMatch(/event: /);
    // The HTTPS listener drains like the plain one: an open stream does not hold the stop.
    await broker.stop();
    broker = undefined as unknown as RunningBroker;
    // And the PEP sees its stream end (and reconnects, in real life) instead of hanging.
    let ended = false;
    while (!ended) ended = (await reader.read().catch(() => ({ done: true }))).done;
  });
});

describe('plain http to a host that is not loopback refuses to start unless allowed', () => {
  it('loopback is 127.0.0.0/8, ::1 and localhost, nothing else', () => {
    for (const host of [
      '127.0.0.1',
      '127.8.9.10',
      '[::1]',
      'localhost',
      'LOCALHOST',
      'api.localhost',
      '[::ffff:7f00:1]',
    ])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of [
      'broker.example.com',
      '10.0.0.1',
      '0.0.0.0',
      '[::]',
      '127.0.0.1.nip.io',
      '[::ffff:a00:1]',
      '128.0.0.1',
    ])
      expect(isLoopbackHost(host), host).toBe(false);
  });

  it('settings: TLS files go together; TETHER_ALLOW_INSECURE_HTTP is a boolean; an unreadable file names itself', async () => {
    expect(() => resolveConfig({ tlsKey: '/k.pem' })).toThrow(/tlsCert and tlsKey go together/);
    expect(() => resolveConfig({ tlsClientCa: '/ca.pem' })).toThrow(/tlsClientCa needs them/);
    expect(configFromEnvironment({ TETHER_ALLOW_INSECURE_HTTP: '1' })).toEqual({ allowInsecureHttp: true });
    expect(configFromEnvironment({ TETHER_ALLOW_INSECURE_HTTP: 'false' })).toEqual({
      allowInsecureHttp: false,
    });
    expect(() => resolveConfig(configFromEnvironment({ TETHER_ALLOW_INSECURE_HTTP: 'yes please' }))).toThrow(
      /\/allowInsecureHttp/,
    );
    await expect(
      runningBroker({ port: 0, tlsCert: join(pki, 'missing.crt'), tlsKey: join(pki, 'server.key') }),
    ).rejects.toThrow(/cannot read tlsCert .*missing\.crt: ENOENT/);
  });

  it('startBroker refuses a non-loopback http public URL, naming the setting; loopback http starts', async () => {
    await expect(runningBroker({ port: 0, publicUrl: 'http://broker.example.com' })).rejects.toThrow(
      /public URL http:\/\/broker\.example\.com is plain http.*allowInsecureHttp/,
    );
    const local = await runningBroker({ port: 0, publicUrl: 'http://localhost:8700' });
    await local.stop();
    const allowed = await runningBroker({
      port: 0,
      publicUrl: 'http://broker.example.com',
      allowInsecureHttp: true,
    });
    await allowed.stop();
  });

  it('tether server --public-url http://broker.example.com exits 2 with the setting to use; --allow-insecure-http starts', async () => {
    const port = await freePort();
    const data = join(work, 'cli-data');
    const env = isolatedEnv({ HOME: mkdtempSync(join(work, 'home-')) });
    const args = [
      'server',
      '--port',
      String(port),
      '--data',
      data,
      '--public-url',
      'http://broker.example.com',
    ];
    const refused = await collect(spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, env })).exited;
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      'error insecure_http: refusing to start: public URL http://broker.example.com is plain http',
    );
    expect(refused.stderr).toContain('--allow-insecure-http');
    expect(existsSync(data), 'nothing is created by a refused start').toBe(false);

    const child = spawn(process.execPath, [MAIN, ...args, '--allow-insecure-http'], { cwd: ROOT, env });
    const server = { child, ...collect(child) };
    try {
      await waitForHealth(`http://127.0.0.1:${port}`, 30_000, server);
    } finally {
      child.kill('SIGTERM');
      await server.exited;
    }
  });

  it('the gateway refuses a non-loopback http broker URL or public URL unless allow_insecure_http', async () => {
    const base = {
      publicUrl: 'http://127.0.0.1:8701',
      broker: 'http://127.0.0.1:8700',
      allowInsecureHttp: false,
    };
    expect(insecureGatewayUrls(base)).toEqual([]);
    expect(insecureGatewayUrls({ ...base, broker: 'https://broker.example.com' })).toEqual([]);
    expect(insecureGatewayUrls({ ...base, broker: 'http://broker.example.com' })).toEqual([
      expect.stringMatching(
        /^broker: http:\/\/broker\.example\.com is plain http.*allow_insecure_http: true/,
      ),
    ]);
    expect(insecureGatewayUrls({ ...base, publicUrl: 'http://gw.example.com' })).toEqual([
      expect.stringMatching(/^public_url: http:\/\/gw\.example\.com is plain http/),
    ]);
    expect(
      insecureGatewayUrls({ ...base, publicUrl: 'http://gw.example.com', allowInsecureHttp: true }),
    ).toEqual([]);

    // The real command: the broker URL comes from the identity file, and the gateway stops before listening.
    const dir = mkdtempSync(join(work, 'gateway-'));
    const { privateKey } = await generateKeyPair('Ed25519', { extractable: true });
    const key = await exportJWK(privateKey);
    const identity = {
      broker: 'http://broker.example.com',
      tenant: 'ten_1',
      principal: 'prn_1',
      key: { ...key, kid: 'k', alg: 'EdDSA' },
    };
    writeFileSync(join(dir, 'id.json'), JSON.stringify(identity), { mode: 0o600 });
    const port = await freePort();
    writeFileSync(
      join(dir, 'gateway.yaml'),
      [
        `listen: { host: 127.0.0.1, port: ${port} }`,
        `public_url: http://127.0.0.1:${port}`,
        'upstream: http://127.0.0.1:9',
        'identity: id.json',
        'routes:',
        '  - { method: GET, path: /x, action: a:read, resource: r }',
      ].join('\n'),
    );
    const run = await collect(
      spawn(process.execPath, [MAIN, 'gateway', '--config', join(dir, 'gateway.yaml')], {
        cwd: ROOT,
        env: isolatedEnv({ HOME: dir }),
      }),
    ).exited;
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('broker: http://broker.example.com is plain http');
    expect(run.stderr).toContain('allow_insecure_http: true');
  });
});

describe('data directory 0700, store files 0600', () => {
  const mode = (path: string) => statSync(path).mode & 0o777;
  const open = async (dataDir: string, logs: string[] = []) =>
    openBroker({
      config: { dataDir, logLevel: 'warn' },
      logger: pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) }),
    });

  it('a fresh data directory is created 0700, the database (and -wal, -shm) and the KEK 0600', async () => {
    const dataDir = join(work, 'fresh', 'nested');
    const ctx = await open(dataDir);
    try {
      expect(mode(dataDir)).toBe(0o700);
      for (const name of ['tether.db', 'tether.db-wal', 'tether.db-shm', 'kek'])
        expect(mode(join(dataDir, name)), name).toBe(0o600);
    } finally {
      await ctx.store.close();
    }
  });

  it('looser modes found at start are tightened, with a warning', async () => {
    const dataDir = mkdtempSync(join(work, 'loose-'));
    await (await open(dataDir)).store.close();
    chmodSync(dataDir, 0o777);
    chmodSync(join(dataDir, 'tether.db'), 0o666);
    const logs: string[] = [];
    const ctx = await open(dataDir, logs);
    try {
      expect(mode(dataDir)).toBe(0o700);
      expect(mode(join(dataDir, 'tether.db'))).toBe(0o600);
      const warnings = logs.map((l) => JSON.parse(l) as { msg: string; path: string; was: string });
      expect(warnings).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ path: dataDir, was: '777', msg: expect.stringMatching(/^tightened/) }),
          expect.objectContaining({ path: join(dataDir, 'tether.db'), was: '666' }),
        ]),
      );
    } finally {
      await ctx.store.close();
    }
  });

  it('a KEK file others can read is refused, not used: it may have been copied', async () => {
    const dataDir = mkdtempSync(join(work, 'kek-'));
    await (await open(dataDir)).store.close();
    chmodSync(join(dataDir, 'kek'), 0o644);
    await expect(open(dataDir)).rejects.toThrow(/kek is readable by others \(mode 644\); run: chmod 600/);
  });
});
