import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IdentityFile } from '@tether-broker/protocol';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BoundSession, BrokerClient } from '../../packages/client/src/index.js';
import { createEnforcer, type Decision, type Enforcer } from '../../packages/pep/src/index.js';
import { newKeyPair } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import {
  collect,
  freePort,
  isolatedEnv,
  MAIN,
  ROOT,
  type Spawned,
  waitForHealth,
} from '../support/processes.js';

/**
 * Issue #4's replica acceptance with real processes: two `tether server` processes on one
 * PostgreSQL schema, one public URL (as behind a load balancer), one key-encryption key.
 * A resource server's PEP follows replica B; the session is ended through replica A; the
 * PEP refuses the session's token.
 */

const pgUrl = inject('pgUrl');

/** A PostgreSQL URL that puts the store in `schema` (libpq's `options`, as an operator would write it). */
function urlWithSchema(base: string, schema: string): string {
  const url = new URL(base);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

describe.skipIf(!pgUrl)('two broker replicas on PostgreSQL, as real processes [postgres]', () => {
  // The creation time in the name lets a later run's global setup drop it if this run dies.
  const schema = `tether_t_${Date.now().toString(36)}_${randomBytes(6).toString('hex')}`;
  const spawned: Spawned[] = [];
  const dirs: string[] = [];
  let home: string;
  let publicUrl: string;
  let replicaB: string;
  let b: Spawned;
  let resource: HttpServer | undefined;
  let origin: string;
  let enforcer: Enforcer | undefined;
  /** Sequence numbers the PEP applied, and when. */
  const applied: { seq: number; at: number }[] = [];

  function server(args: string[], env: NodeJS.ProcessEnv): Spawned {
    const child = spawn(process.execPath, [MAIN, 'server', ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const started = { child, ...collect(child) };
    spawned.push(started);
    return started;
  }

  const tempDir = (prefix: string) => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };

  /** A resource server enforcing with the PEP library (`enforcer`, which follows replica B). */
  async function startResourceServer(): Promise<void> {
    resource = createHttpServer(async (req, res) => {
      if (enforcer === undefined) {
        res.writeHead(503).end();
        return;
      }
      const decision: Decision = await enforcer.authorize({
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        headers: req.headers,
        action: 'firewall:rules.write',
        resource: 'firewall/edge-1',
      });
      res
        .writeHead(decision.status, {
          'content-type': 'application/json',
          ...(decision.wwwAuthenticate ? { 'www-authenticate': decision.wwwAuthenticate } : {}),
        })
        .end(JSON.stringify({ code: decision.code, session: decision.session ?? null }));
    });
    await new Promise<void>((resolve) => resource?.listen(0, '127.0.0.1', resolve));
    const address = resource.address();
    origin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  }

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} does not exist: run \`npm run build\` first`);
    await admin(`create schema ${schema}`);
    const database = urlWithSchema(pgUrl, schema);
    home = tempDir('tether-replicas-home-');
    const [portA, portB] = [await freePort(), await freePort()];
    publicUrl = `http://127.0.0.1:${portA}`;
    replicaB = `http://127.0.0.1:${portB}`;
    // One key-encryption key for both: each replica decrypts the signing keys the other stored.
    const env = isolatedEnv({
      TETHER_HOME: home,
      TETHER_KEK: randomBytes(32).toString('base64url'),
      TETHER_LOG_LEVEL: 'info',
    });
    const shared = ['--database', database, '--public-url', publicUrl];
    const a = server(['--demo', '--port', String(portA), '--data', tempDir('tether-a-'), ...shared], env);
    await waitForHealth(publicUrl, 20_000, a);
    b = server(['--port', String(portB), '--data', tempDir('tether-b-'), ...shared], env);
    await waitForHealth(replicaB, 20_000, b);
  });

  afterAll(async () => {
    await enforcer?.close();
    await new Promise((resolve) => (resource ? resource.close(resolve) : resolve(undefined)));
    for (const p of spawned)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
    const ends = await Promise.all(spawned.map((p) => p.exited));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    await admin(`drop schema if exists ${schema} cascade`);
    // A clean stop: each replica closed its LISTEN connection and its pool before exiting.
    for (const end of ends) expect(end.code, end.stderr).toBe(0);
  });

  const demo = (name: string) =>
    JSON.parse(readFileSync(join(home, 'demo', `${name}.json`), 'utf8')) as IdentityFile;

  it('both replicas listen on the channel of their shared schema', () => {
    for (const p of spawned) {
      expect(p.stderr()).toContain('listening for revocation notifications');
      expect(p.stderr()).toContain(`tether_revocations_${schema}`);
    }
  });

  it('a session ended through replica A is refused by a PEP connected to replica B', async () => {
    const adminClient = new BrokerClient({ identity: demo('admin') });
    // The PEP's principal, and the resource server it guards as the firewall privilege's audience.
    const { privateJwk, publicJwk } = await newKeyPair();
    const pepPrincipal = await adminClient.call<{ id: string }>('POST', '/v1/principals', {
      name: 'edge-pep',
      kind: 'service',
      roles: ['pep'],
      keys: [publicJwk],
    });
    const tenant = demo('admin').tenant;
    await startResourceServer();
    enforcer = createEnforcer({
      // Reaches replica B; trusts the issuer both replicas share.
      broker: replicaB,
      issuer: publicUrl,
      audience: origin,
      tenant,
      publicBaseUrl: origin,
      identity: { principal: pepPrincipal.id, key: privateJwk as Record<string, unknown> },
      stalenessBudgetMs: 10_000,
      decisions: false,
      onApplied: (seq) => applied.push({ seq, at: Date.now() }),
    });
    enforcer.start();
    await adminClient.call('PATCH', '/v1/privileges/firewall-admin', { audiences: [origin] });

    // olivia asks, avery approves, olivia activates: all through replica A.
    const olivia = new BrokerClient({ identity: demo('olivia') });
    const avery = new BrokerClient({ identity: demo('avery') });
    const request = await olivia.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-4006',
      justification: 'rotate edge rules',
      duration: 1800,
    });
    await avery.call('POST', `/v1/requests/${request.id}/approve`);
    const session = await BoundSession.activate(olivia, request.id);

    await eventually(
      () => enforcer?.state().fresh === true,
      10_000,
      'the PEP confirmed fresh through replica B',
    );
    const allowed = await session.fetch(`${origin}/rules`, { method: 'POST', body: '{}' });
    expect(allowed.status).toBe(200);
    expect(await allowed.json()).toEqual({ code: 'ok', session: session.info.id });

    const before = enforcer.state().position;
    const endedAt = Date.now();
    await session.end('revoked');
    await eventually(
      () => applied.some((a) => a.seq > before),
      10_000,
      'replica B streamed the end to the PEP',
    );

    // The same token with a fresh proof: refused, for the session's end.
    const refused = await session.fetch(`${origin}/rules`, { method: 'POST', body: '{}' });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ code: 'invalid_token', session: session.info.id });
    expect(refused.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_token"/);
    expect(refused.headers.get('www-authenticate')).toContain('the session has ended (revoked)');
    // Within the bound: PEPs deny everything once their budget passes, so an end reaches them sooner.
    const latency = (applied.find((a) => a.seq > before)?.at ?? Number.POSITIVE_INFINITY) - endedAt;
    expect(latency).toBeLessThan(10_000);
  });
});
