import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAccessTokenVerifier, ReplayCache, remoteKeySource, TokenRefused } from '@tether-broker/pep';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  collect,
  type Finished,
  freePort,
  isolatedEnv,
  MAIN,
  ROOT,
  type Spawned,
  spawnDemoBroker,
  waitForHealth,
} from '../support/processes.js';

/**
 * Sessions as a user lives them, with real processes: the built CLI runs the demo broker;
 * a resource server in this process enforces with the PEP library against the broker's JWKS;
 * olivia starts a session and calls the resource with `tether fetch`.
 */

interface StoredSessionFile {
  session: string;
  request: string;
  principal: string;
  audiences: string[];
  hard_expires_at: string;
  key: { d?: string };
  access_token: string;
  refresh_token: string;
  expires_at: string;
}

/** A resource server enforcing Tether access tokens with the PEP library; echoes what it saw. */
async function startResourceServer(
  brokerUrl: string,
  tenant: string,
): Promise<{ server: HttpServer; origin: string }> {
  const server = createHttpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const origin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const verifier = createAccessTokenVerifier({
    issuer: brokerUrl,
    audience: origin,
    // The PEP enforces for the demo tenant only (required: all tenants share one issuer).
    tenant,
    publicBaseUrl: origin,
    // A short refetch interval, so a key rotated in during the test is picked up at once.
    keys: remoteKeySource(`${brokerUrl}/.well-known/jwks.json`, { now: Date.now, minRefreshIntervalMs: 100 }),
    now: Date.now,
    replayCache: new ReplayCache({ maxEntries: 10_000, now: Date.now }),
  });
  server.on('request', async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    try {
      const { claims } = await verifier.verify({
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
        ...(req.headers.dpop ? { dpop: req.headers.dpop } : {}),
      });
      if (req.url?.startsWith('/moved')) {
        res.writeHead(302, { location: 'http://127.0.0.1:9/elsewhere' }).end();
        return;
      }
      const status = req.url?.startsWith('/forbidden') ? 403 : 200;
      res.writeHead(status, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          sid: claims.sid,
          sub: claims.sub,
          actions: claims.authorization_details[0]?.actions,
          method: req.method,
          type: req.headers['content-type'] ?? null,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    } catch (err) {
      if (err instanceof TokenRefused) {
        res
          .writeHead(err.status, {
            'www-authenticate': err.wwwAuthenticate,
            'content-type': 'application/json',
          })
          .end(JSON.stringify({ error: err.code }));
        return;
      }
      res.writeHead(500).end();
    }
  });
  return { server, origin };
}

describe('sessions from the CLI: start, fetch, end, revoke, rotate keys, trust', () => {
  let home: string;
  let data: string;
  let url: string;
  let origin: string;
  let resource: HttpServer;
  let env: NodeJS.ProcessEnv;
  let broker: Spawned;
  const spawned: Spawned[] = [];
  /** Everything every CLI run printed, to look for secrets in. */
  const printed: string[] = [];
  /** Every token and key the session files held over the test. */
  const secrets = new Set<string>();

  const sessionsDir = () => join(home, 'sessions');
  const sessionFile = (id: string) => join(sessionsDir(), `${id}.json`);
  const readSession = (id: string): StoredSessionFile => {
    const stored = JSON.parse(readFileSync(sessionFile(id), 'utf8')) as StoredSessionFile;
    for (const secret of [stored.access_token, stored.refresh_token, stored.key.d ?? '']) secrets.add(secret);
    return stored;
  };

  const tether = (...args: string[]) => tetherWith({}, ...args);

  async function tetherWith(extraEnv: NodeJS.ProcessEnv, ...args: string[]): Promise<Finished> {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: ROOT,
      env: { ...env, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const finished = await collect(child).exited.finally(() => clearTimeout(timer));
    printed.push(finished.stdout, finished.stderr);
    return finished;
  }

  /** A request by olivia for the firewall, approved by avery: answers nothing, asserts success. */
  async function approvedRequest(ticket: string): Promise<void> {
    const asked = await tether(
      'request',
      'firewall-admin',
      '--ticket',
      ticket,
      '--duration',
      '30m',
      '--reason',
      'rotate edge rules',
      '--as',
      'olivia',
    );
    expect(asked.code, asked.stderr).toBe(0);
    const approved = await tether('approve', '--ticket', ticket, '--as', 'avery');
    expect(approved.code, approved.stderr).toBe(0);
  }

  async function startSession(ticket: string): Promise<string> {
    const started = await tether('session', 'start', '--ticket', ticket, '--json', '--as', 'olivia');
    expect(started.code, started.stderr).toBe(0);
    return (JSON.parse(started.stdout) as { id: string }).id;
  }

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} does not exist: run \`npm run build\` first`);
    home = mkdtempSync(join(tmpdir(), 'tether-sessions-home-'));
    data = mkdtempSync(join(tmpdir(), 'tether-sessions-data-'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    // info-level logs: the secrets check below reads them too.
    env = isolatedEnv({ TETHER_HOME: home, TETHER_LOG_LEVEL: 'info' });
    broker = spawnDemoBroker(port, data, env);
    spawned.push(broker);
    await waitForHealth(url, 15_000, broker);
    // The demo tenant, as the demo identity files name it (written before /healthz answers).
    const { tenant } = JSON.parse(readFileSync(join(home, 'demo', 'olivia.json'), 'utf8')) as {
      tenant: string;
    };
    ({ server: resource, origin } = await startResourceServer(url, tenant));
  });

  afterAll(async () => {
    for (const p of spawned)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(spawned.map((p) => p.exited));
    await new Promise((resolve) => resource?.close(resolve));
    rmSync(home, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  });

  let sessionId: string;

  it('admin points the firewall privilege at the resource server', async () => {
    const updated = await tether(
      'privilege',
      'update',
      'firewall-admin',
      '--audience',
      origin,
      '--as',
      'admin',
    );
    expect(updated.code, updated.stderr).toBe(0);
    expect(updated.stdout).toContain(origin);
  });

  it('olivia starts a session: id and hard expiry printed, key stored 0600 and made current', async () => {
    await approvedRequest('NET-900');
    const started = await tether('session', 'start', '--ticket', 'NET-900', '--as', 'olivia');
    expect(started.code, started.stderr).toBe(0);
    sessionId = /session (ses_[0-9a-z]{26}) started/.exec(started.stdout)?.[1] ?? '';
    expect(sessionId).not.toBe('');
    expect(started.stdout).toMatch(/hard expiry:\s+\S+ \S+ \(in (30m|29m\d+s)\)/);
    expect(started.stdout).toContain(origin);

    expect(statSync(sessionsDir()).mode & 0o777).toBe(0o700);
    expect(statSync(sessionFile(sessionId)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(sessionsDir(), 'current'), 'utf8').trim()).toBe(sessionId);
    const stored = readSession(sessionId);
    expect(stored).toMatchObject({ session: sessionId, audiences: [origin] });
    expect(stored.key.d).toEqual(expect.any(String));

    // One approved request, one session: asking again starts nothing.
    const again = await tether('session', 'start', '--ticket', 'NET-900', '--as', 'olivia');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('no approved request of yours for ticket NET-900');
    const byId = await tether('session', 'start', stored.request, '--as', 'olivia');
    expect(byId.code).toBe(1);
    expect(byId.stderr).toContain('error already_activated');
    expect(readdirSync(sessionsDir()).filter((f) => f.endsWith('.json'))).toEqual([`${sessionId}.json`]);
  });

  it('fetch calls the resource server with the session (no identity needed): 200, body on stdout', async () => {
    const got = await tether('fetch', `${origin}/rules?zone=edge`);
    expect(got.code, got.stderr).toBe(0);
    const body = JSON.parse(got.stdout) as { sid: string; actions: string[]; method: string };
    expect(body).toMatchObject({ sid: sessionId, method: 'GET' });
    expect(body.actions).toContain('firewall:rules.write');

    const posted = await tether('fetch', `${origin}/rules`, '-d', '{"allow":443}', '-H', 'X-Trace: e2e');
    expect(posted.code, posted.stderr).toBe(0);
    expect(JSON.parse(posted.stdout)).toMatchObject({
      method: 'POST',
      type: 'application/json',
      body: '{"allow":443}',
    });
  });

  it('a status other than 2xx: body on stdout, status on stderr, exit 1', async () => {
    const refused = await tether('fetch', `${origin}/forbidden`);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout)).toMatchObject({ sid: sessionId });
    expect(refused.stderr).toMatch(/error http_403: .*answered 403/);

    const moved = await tether('fetch', `${origin}/moved`);
    expect(moved.code).toBe(1);
    expect(moved.stderr).toContain('302');
    expect(moved.stderr).toContain('redirect to http://127.0.0.1:9/elsewhere, not followed');
  });

  it('refreshes an expiring access token, writes the new tokens back (0600), and refreshes once under concurrency', async () => {
    const before = readSession(sessionId);
    // As if the access token were about to expire: the CLI refreshes before calling.
    writeFileSync(
      sessionFile(sessionId),
      JSON.stringify({ ...before, expires_at: new Date().toISOString() }),
      {
        mode: 0o600,
      },
    );
    const runs = await Promise.all([1, 2, 3].map(() => tether('fetch', `${origin}/rules`)));
    for (const run of runs) expect(run.code, run.stderr).toBe(0);
    const after = readSession(sessionId);
    expect(after.refresh_token).not.toBe(before.refresh_token);
    expect(after.access_token).not.toBe(before.access_token);
    expect(Date.parse(after.expires_at)).toBeGreaterThan(Date.now() + 60_000);
    expect(statSync(sessionFile(sessionId)).mode & 0o777).toBe(0o600);
    // Had two processes refreshed with the same token, the broker would have ended the session (refresh_reuse).
    const shown = await tether('session', 'show', '--json', '--as', 'olivia');
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id: sessionId, state: 'active' });
  });

  it('session list marks the session whose key this machine holds', async () => {
    const listed = await tether('session', 'list', '--as', 'olivia');
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(
      new RegExp(`${sessionId}\\s+olivia\\s+firewall-admin\\s+NET-900\\s+active.*local, current`),
    );
  });

  it('session end ends it at the broker and deletes the key file; a further fetch fails clearly', async () => {
    const ended = await tether('session', 'end', '--as', 'olivia');
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.stdout).toContain(`ended session ${sessionId}`);
    expect(existsSync(sessionFile(sessionId))).toBe(false);
    expect(existsSync(join(sessionsDir(), 'current'))).toBe(false);

    const shown = await tether('session', 'show', sessionId, '--json', '--as', 'olivia');
    expect(JSON.parse(shown.stdout)).toMatchObject({ state: 'ended', end_reason: 'completed' });

    const after = await tether('fetch', `${origin}/rules`);
    expect(after.code).toBe(1);
    expect(after.stdout).toBe('');
    expect(after.stderr).toMatch(
      /error no_session: no session on this machine is for http:\/\/127\.0\.0\.1:\d+/,
    );
  });

  it('admin revokes by ticket: the session ends and its local key is deleted', async () => {
    await approvedRequest('NET-901');
    const id = await startSession('NET-901');
    readSession(id);
    const revoked = await tether('revoke', '--ticket', 'NET-901', '--note', 'incident 7', '--as', 'admin');
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain('revoked 1 session(s)');
    expect(revoked.stdout).toContain(id);
    expect(existsSync(sessionFile(id))).toBe(false);
    const shown = await tether('session', 'show', id, '--json', '--as', 'admin');
    expect(JSON.parse(shown.stdout)).toMatchObject({ state: 'ended', end_reason: 'revoked' });
  });

  it('a session ended elsewhere: fetch learns it at the next refresh and deletes the key', async () => {
    await approvedRequest('NET-902');
    const id = await startSession('NET-902');
    const stored = readSession(id);
    // The admin revokes it from another machine: this machine's key file stays as it was.
    const elsewhere = mkdtempSync(join(tmpdir(), 'tether-sessions-elsewhere-'));
    try {
      const adminIdentity = join(home, 'demo', 'admin.json');
      const revoked = await tetherWith(
        { TETHER_HOME: elsewhere },
        'revoke',
        '--session',
        id,
        '--identity',
        adminIdentity,
      );
      expect(revoked.code, revoked.stderr).toBe(0);
      expect(revoked.stdout).toContain(`revoked session ${id}`);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
    expect(existsSync(sessionFile(id))).toBe(true);
    // Its access token is about to expire, so the next call refreshes: the broker refuses.
    writeFileSync(sessionFile(id), JSON.stringify({ ...stored, expires_at: new Date().toISOString() }), {
      mode: 0o600,
    });
    const after = await tether('fetch', `${origin}/rules`);
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/error session_ended: session ses_\w+ can no longer be used/);
    expect(existsSync(sessionFile(id))).toBe(false);
  });

  it('prints no token and no key, on stdout, stderr or in the broker log', () => {
    expect(secrets.size).toBeGreaterThan(6);
    // The broker logged every request, refreshes included: there was something to leak into.
    expect(broker.stderr()).toContain('/oauth/token');
    const everything = [...printed, broker.stdout(), broker.stderr()].join('\n');
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(20);
      expect(everything.includes(secret), 'a token or key was printed').toBe(false);
    }
  });

  it('keys rotate on the running broker store: the JWKS then lists both keys, and new tokens verify', async () => {
    const jwksKids = async () =>
      ((await (await fetch(`${url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys.map(
        (k) => k.kid,
      );
    const [oldKid] = await jwksKids();
    const rotated = await tether('keys', 'rotate', '--data', data, '--overlap', '10m', '--json');
    expect(rotated.code, rotated.stderr).toBe(0);
    const answer = JSON.parse(rotated.stdout) as { kid: string; retiring: string[]; retire_at: string };
    expect(answer.retiring).toEqual([oldKid]);
    expect(Date.parse(answer.retire_at) - Date.now()).toBeGreaterThan(9 * 60_000);
    // The broker reloads its keys on every sweep (5 s by default).
    await expect
      .poll(jwksKids, { timeout: 15_000, interval: 250 })
      .toEqual(expect.arrayContaining([answer.kid, oldKid]));

    await approvedRequest('NET-903');
    const id = await startSession('NET-903');
    const got = await tether('fetch', `${origin}/rules`);
    expect(got.code, got.stderr).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ sid: id });
    const token = readSession(id).access_token;
    const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string };
    expect(header.kid).toBe(answer.kid);
  });

  it('keys rotate refuses a directory that holds no broker store, creating nothing', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'tether-sessions-nostore-'));
    try {
      const refused = await tether('keys', 'rotate', '--data', empty);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('error store_not_found');
      expect(existsSync(join(empty, 'tether.db'))).toBe(false);
      expect(existsSync(join(empty, 'kek'))).toBe(false);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('trust add | list | show | remove: a workload issuer, as the admin', async () => {
    const added = await tether(
      'trust',
      'add',
      'github-actions',
      '--issuer',
      'https://token.actions.githubusercontent.com',
      '--jwks-uri',
      'https://token.actions.githubusercontent.com/.well-known/jwks',
      '--audience',
      `${url}/tenants/demo-msp`,
      '--map',
      'repository=acme/web,ref=refs/heads/main:deploy-pipeline',
      '--claim',
      'ref',
      '--as',
      'admin',
    );
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/repository=acme\/web, ref=refs\/heads\/main -> deploy-pipeline/);

    const listed = await tether('trust', 'list', '--json', '--as', 'admin');
    expect(listed.code, listed.stderr).toBe(0);
    const { federations } = JSON.parse(listed.stdout) as {
      federations: { name: string; context_claims: string[]; task_claim: string }[];
    };
    expect(federations).toEqual([
      expect.objectContaining({ name: 'github-actions', context_claims: ['ref'], task_claim: 'run_id' }),
    ]);

    const shown = await tether('trust', 'show', 'github-actions', '--as', 'olivia');
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('https://token.actions.githubusercontent.com');

    const notAdmin = await tether(
      'trust',
      'add',
      'mine',
      '--issuer',
      'https://issuer.example',
      '--jwks-uri',
      'https://issuer.example/jwks',
      '--audience',
      'x',
      '--map',
      'sub=me:deploy-pipeline',
      '--as',
      'olivia',
    );
    expect(notAdmin.code).toBe(1);
    expect(notAdmin.stderr).toContain('error forbidden');

    const removed = await tether('trust', 'remove', 'github-actions', '--as', 'admin');
    expect(removed.code, removed.stderr).toBe(0);
    const empty = await tether('trust', 'list', '--as', 'admin');
    expect(empty.stdout).toContain('no trusted issuers');
  });
});
