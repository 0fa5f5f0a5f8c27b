import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** End-to-end tests run real processes: the built CLI, the demo broker, shell lines. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MAIN = join(ROOT, 'packages/cli/bundle/tether.js');

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<Finished>;
}

/** A port nothing listens on right now, on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/** Collects a child's output, and its end. */
export function collect(child: ChildProcess): Omit<Spawned, 'child'> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<Finished>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { stdout: () => stdout, stderr: () => stderr, exited };
}

/** The environment of a test process: the caller's, less anything that would pick another broker or store. */
export function isolatedEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const {
    TETHER_IDENTITY: _identity,
    TETHER_PORT: _port,
    TETHER_DATA: _data,
    DATABASE_URL: _database,
    TETHER_KEK: _kek,
    TETHER_TLS_CERT: _tlsCert,
    TETHER_TLS_KEY: _tlsKey,
    TETHER_TLS_CLIENT_CA: _tlsClientCa,
    TETHER_ALLOW_INSECURE_HTTP: _allowInsecureHttp,
    TETHER_METRICS_TOKEN: _metricsToken,
    ...rest
  } = process.env;
  return { ...rest, NO_COLOR: '1', ...extra };
}

/** Starts `tether server --demo` on a port and data directory of the test's. */
export function spawnDemoBroker(port: number, data: string, env: NodeJS.ProcessEnv): Spawned {
  const child = spawn(process.execPath, [MAIN, 'server', '--demo', '--port', String(port), '--data', data], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { child, ...collect(child) };
}

/** Polls `/healthz` until it answers 200, the process exits, or `withinMs` passes. */
export async function waitForHealth(url: string, withinMs: number, server: Spawned): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null) {
      throw new Error(`the server exited early (${server.child.exitCode}):\n${server.stderr()}`);
    }
    const ok = await fetch(`${url}/healthz`)
      .then((r) => r.status === 200)
      .catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no 200 from ${url}/healthz within ${withinMs} ms:\n${server.stderr()}`);
}
