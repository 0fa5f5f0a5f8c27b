import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BoundSession,
  BrokerClient,
  createDpopProof,
  loadIdentity,
  sessionKeyFromJwk,
} from '@tether-broker/client';
import type { SessionReceipt } from '@tether-broker/protocol';
import type { JWK } from 'jose';
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
 * The gateway as an operator runs it, with real processes: the demo broker, the stand-in firewall
 * admin API (`tether demo firewall`) and `tether gateway` in front of it, from the shipped
 * example configuration with its ports moved and a 1 s staleness budget. olivia works through
 * the gateway with `tether fetch`; the test then plays the holder of her token.
 */

const BUDGET_MS = 1000;

/**
 * A TCP relay between the gateway and the broker: `cut()` is a network partition (every
 * connection dropped, new ones refused), `restore()` ends it.
 */
async function startRelay(
  target: () => number,
): Promise<{ port: number; cut(): void; restore(): void; close(): void }> {
  const sockets = new Set<Socket>();
  let partitioned = false;
  const server = createServer((client) => {
    if (partitioned) return client.destroy();
    const upstream = connect(target(), '127.0.0.1');
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from);
      from.pipe(to);
      from.on('error', () => to.destroy());
      from.on('close', () => {
        sockets.delete(from);
        to.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut() {
      partitioned = true;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      partitioned = false;
    },
    close() {
      this.cut();
      server.close();
    },
  };
}

interface HeldSession {
  id: string;
  token: string;
  key: JWK;
}

describe('tether gateway in front of the demo firewall (real processes)', () => {
  let home: string;
  let data: string;
  let env: NodeJS.ProcessEnv;
  let brokerPort: number;
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let broker: Spawned;
  let gateway: Spawned;
  let firewallUrl: string;
  let gatewayUrl: string;
  const spawned: Spawned[] = [];

  const tether = async (...args: string[]): Promise<Finished> => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    return collect(child).exited.finally(() => clearTimeout(timer));
  };
  const ok = async (...args: string[]): Promise<Finished> => {
    const run = await tether(...args);
    expect(run.code, `tether ${args.join(' ')}\n${run.stderr}`).toBe(0);
    return run;
  };
  const start = (...args: string[]): Spawned => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const p = { child, ...collect(child) };
    spawned.push(p);
    return p;
  };
  const startBroker = (port: number) => {
    const p = spawnDemoBroker(port, data, env);
    spawned.push(p);
    return p;
  };
  const stop = async (p: Spawned): Promise<Finished> => {
    p.child.kill('SIGTERM');
    return p.exited;
  };

  /** A session of olivia's for the firewall, approved by avery; its token and key, as the CLI stored them. */
  async function heldSession(ticket: string): Promise<HeldSession> {
    await ok(
      'request',
      'firewall-admin',
      '--ticket',
      ticket,
      '--duration',
      '30m',
      '--reason',
      'edge rules',
      '--as',
      'olivia',
    );
    await ok('approve', '--ticket', ticket, '--as', 'avery');
    const id = (
      JSON.parse((await ok('session', 'start', '--ticket', ticket, '--json', '--as', 'olivia')).stdout) as {
        id: string;
      }
    ).id;
    const stored = JSON.parse(readFileSync(join(home, 'sessions', `${id}.json`), 'utf8')) as {
      access_token: string;
      key: JWK;
    };
    return { id, token: stored.access_token, key: stored.key };
  }

  /** A client acting as a demo principal, at the broker its identity file names now. */
  const client = (name: string) =>
    new BrokerClient({ identity: loadIdentity(join(home, 'demo', `${name}.json`)) });

  /** Like {@link heldSession}, with the client SDK in this process (no CLI runs: faster). */
  async function sdkSession(ticket: string): Promise<BoundSession> {
    const olivia = client('olivia');
    const request = await olivia.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket,
      justification: 'edge rules',
      duration: 1800,
    });
    await client('avery').call('POST', `/v1/requests/${request.id}/approve`);
    return BoundSession.activate(olivia, request.id);
  }

  /** The gateway's latest DPoP nonce (RFC 9449 §9), as a client learns it from `DPoP-Nonce`. */
  let gatewayNonce: string | undefined;

  /**
   * A call with the session's token and a fresh DPoP proof for exactly this request, carrying
   * the gateway's nonce; a `use_dpop_nonce` challenge is answered once, as the SDK does.
   */
  async function call(held: HeldSession, method: string, path: string, body?: unknown): Promise<Response> {
    const url = `${gatewayUrl}${path}`;
    const send = async () => {
      const proof = await createDpopProof(await sessionKeyFromJwk(held.key), {
        method,
        url,
        accessToken: held.token,
        ...(gatewayNonce === undefined ? {} : { nonce: gatewayNonce }),
      });
      const response = await fetch(url, {
        method,
        headers: {
          authorization: `DPoP ${held.token}`,
          dpop: proof,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      gatewayNonce = response.headers.get('dpop-nonce') ?? gatewayNonce;
      return response;
    };
    const first = await send();
    if (first.status !== 401 || !first.headers.get('www-authenticate')?.includes('use_dpop_nonce'))
      return first;
    await first.body?.cancel();
    return send();
  }
  const codeOf = async (response: Response) => ((await response.json()) as { code?: string }).code;
  const rulesAtFirewall = async (edge: string) =>
    ((await (await fetch(`${firewallUrl}/rules/${edge}`)).json()) as { rules: unknown[] }).rules.length;

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} does not exist: run \`npm run build\` first`);
    home = mkdtempSync(join(tmpdir(), 'tether-gateway-home-'));
    data = mkdtempSync(join(tmpdir(), 'tether-gateway-data-'));
    brokerPort = await freePort();
    const firewallPort = await freePort();
    const gatewayPort = await freePort();
    firewallUrl = `http://127.0.0.1:${firewallPort}`;
    gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    // Heartbeats well inside the gateway's 1 s budget.
    env = isolatedEnv({ TETHER_HOME: home, TETHER_HEARTBEAT_INTERVAL_MS: '100' });
    broker = startBroker(brokerPort);
    const firewall = start('demo', 'firewall', '--port', String(firewallPort));
    await waitForHealth(`http://127.0.0.1:${brokerPort}`, 15_000, broker);
    await waitForHealth(firewallUrl, 15_000, firewall);
    // The demo grants firewall-admin for the gateway at 127.0.0.1:8701; this one listens elsewhere.
    await ok('privilege', 'update', 'firewall-admin', '--audience', gatewayUrl, '--as', 'admin');
    // ...and the gateway's PEP principal records decisions only for the audience it enforces.
    await ok('pep', 'audiences', 'edge-gateway', gatewayUrl, '--as', 'admin');

    relay = await startRelay(() => brokerPort);
    const example = readFileSync(join(ROOT, 'examples', 'gateway.yaml'), 'utf8');
    const config = join(home, 'gateway.yaml');
    writeFileSync(
      config,
      example
        .replaceAll('127.0.0.1:8701', `127.0.0.1:${gatewayPort}`)
        .replace(/^ {2}port: 8701$/m, `  port: ${gatewayPort}`)
        .replaceAll('127.0.0.1:9801', firewallUrl.slice('http://'.length))
        .replace(/^staleness_budget: .*$/m, `staleness_budget: ${BUDGET_MS}ms`) +
        // The gateway reaches the broker through the relay; the broker's own URL stays the issuer.
        `broker: http://127.0.0.1:${relay.port}\nissuer: http://127.0.0.1:${brokerPort}\n`,
    );
    gateway = start('gateway', '--config', config, '--as', 'edge-gateway', '--log-level', 'warn');
    await waitForHealth(gatewayUrl, 15_000, gateway);
  });

  afterAll(async () => {
    relay?.close();
    for (const p of spawned)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(spawned.map((p) => p.exited));
    rmSync(home, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  });

  it('a session calls the firewall through the gateway; once ended, its token is refused with a fresh proof, and the receipt names the gateway', async () => {
    const held = await heldSession('NET-1');
    const id = held.id;

    const added = await ok(
      'fetch',
      `${gatewayUrl}/rules/edge-1`,
      '-X',
      'POST',
      '-d',
      '{"action":"allow","source":"10.0.0.0/8","port":443}',
    );
    const answer = JSON.parse(added.stdout) as {
      rule: { added_by: string };
      tether: Record<string, string>;
      credentials: Record<string, boolean>;
    };
    const olivia = (
      JSON.parse(readFileSync(join(home, 'demo', 'olivia.json'), 'utf8')) as { principal: string }
    ).principal;
    // The firewall learnt who acted from the gateway, and never saw the token or the proof.
    expect(answer.tether).toEqual({
      principal: olivia,
      session: id,
      ticket: 'NET-1',
      privilege: 'firewall-admin',
    });
    expect(answer.credentials).toEqual({ authorization: false, dpop: false });
    expect(answer.rule.added_by).toBe(olivia);
    expect((await call(held, 'GET', '/rules/edge-1')).status).toBe(200);

    const ended = await ok('session', 'end', id, '--wait-enforced', '--timeout', '10s', '--as', 'olivia');
    expect(ended.stdout).toContain('enforced:     yes, by every live enforcement point');
    expect(ended.stdout).toMatch(/edge-gateway\s+yes\s+\d+\s+\S+ \S+Z/);

    // The next call, and the same token with a fresh proof for another request: refused, not forwarded.
    const next = await call(held, 'GET', '/rules/edge-1');
    expect(next.status).toBe(401);
    expect(next.headers.get('www-authenticate')).toContain('the session has ended (completed)');
    const again = await call(held, 'POST', '/rules/edge-1', { action: 'deny', source: '0.0.0.0/0' });
    expect(again.status).toBe(401);
    expect(await codeOf(again)).toBe('invalid_token');
    expect(await rulesAtFirewall('edge-1')).toBe(1);

    // Within the bound: the gateway enforced the end within its staleness budget of it.
    const receipt = await client('olivia').call<SessionReceipt>('GET', `/v1/sessions/${id}/receipt`);
    expect(receipt).toMatchObject({ state: 'ended', enforced: true, pending: [] });
    const entry = receipt.peps.find((p) => p.name === 'edge-gateway');
    expect(entry).toMatchObject({ live: true, enforced_at: expect.any(String) });
    expect(Date.parse(entry!.enforced_at!) - Date.parse(receipt.ended_at!)).toBeLessThan(BUDGET_MS);
  });

  it('with the broker stopped it fails closed after its 1 s budget; reachable again, it catches up — a session revoked while it was cut off stays refused — before allowing again', async () => {
    const [kept, cut] = await Promise.all([sdkSession('NET-2'), sdkSession('NET-3')]);
    const get = (session: BoundSession) => session.fetch(`${gatewayUrl}/rules/edge-2`);
    expect((await get(kept)).status).toBe(200);
    expect((await get(cut)).status).toBe(200);

    await stop(broker);
    const stoppedAt = Date.now();
    let response = await get(kept);
    while (response.status === 200 && Date.now() - stoppedAt < 10_000) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      response = await get(kept);
    }
    const staleAfter = Date.now() - stoppedAt;
    expect(response.status).toBe(503);
    expect(await codeOf(response)).toBe('revocation_state_stale');
    expect(staleAfter).toBeGreaterThan(BUDGET_MS / 2);
    expect(staleAfter).toBeLessThan(BUDGET_MS * 4);
    const health = await fetch(`${gatewayUrl}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ status: 'stale', connected: false });

    // The broker comes back on the same port and data, but the gateway stays cut off from it
    // while a session is revoked.
    relay.cut();
    broker = startBroker(brokerPort);
    await waitForHealth(`http://127.0.0.1:${brokerPort}`, 15_000, broker);
    await client('admin').call('POST', `/v1/sessions/${cut.info.id}/end`, { reason: 'revoked' });
    expect((await get(kept)).status).toBe(503);

    // Reachable again: until it has caught up the gateway allows nothing, and the revoked
    // session is refused from then on.
    relay.restore();
    const deadline = Date.now() + 20_000;
    for (;;) {
      const revoked = await get(cut);
      expect([401, 503]).toContain(revoked.status);
      const allowed = await get(kept);
      if (allowed.status === 200) break;
      expect(allowed.status).toBe(503);
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const revoked = await get(cut);
    expect(revoked.status).toBe(401);
    expect(revoked.headers.get('www-authenticate')).toContain('the session has ended (revoked)');
    expect((await fetch(`${gatewayUrl}/healthz`)).status).toBe(200);
  });

  it('stops cleanly on SIGTERM', async () => {
    const finished = await stop(gateway);
    expect(finished.code).toBe(0);
    expect(finished.stderr).toContain('SIGTERM: stopping the gateway');
    expect(finished.stdout).toContain(`tether gateway listening on ${gatewayUrl}`);
  });
});
