import { execFile, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import type { IdentityFile } from '@tether-broker/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest, openStore, type Store } from '../../packages/broker/src/store/database.js';
import { BrokerClient } from '../../packages/client/src/index.js';
import { injectFetch, startTestBroker, type TestBroker } from '../support/broker.js';
import { freePort, ROOT } from '../support/processes.js';
import { setUpScenario } from '../support/scenario.js';

/**
 * The three public packages as a user gets them: packed with `npm pack`, installed from the
 * tarballs into an empty project outside the workspace (their dependencies from the npm cache
 * or registry), and used from a plain `.mjs` there — a PEP-protected Node http server and a
 * client session against a real broker on a port. A file missing from `files`, an export
 * missing from `exports` or a dependency missing from `dependencies` fails it.
 */

const PACKAGES = ['protocol', 'pep', 'client'] as const;
const AUDIENCE = 'https://deploy.example';

interface PackedFile {
  path: string;
}
interface Packed {
  name: string;
  version: string;
  filename: string;
  files: PackedFile[];
}

/** npm's environment, less what `npm test` set for the workspace (its root, its package). */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    const lower = key.toLowerCase();
    if (
      lower.startsWith('npm_package_') ||
      lower.startsWith('npm_lifecycle_') ||
      /^npm_config_(local_prefix|prefix|workspaces?|include_workspace_root)$/.test(lower)
    )
      continue;
    env[key] = value;
  }
  return { ...env, npm_config_update_notifier: 'false' };
}

function npm(args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('npm', args, { cwd, env: npmEnv(), maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`npm ${args.join(' ')} failed in ${cwd}:\n${stderr}\n${stdout}`));
      else resolve(stdout);
    });
  });
}

/** Runs the consumer app; resolves with what it printed. */
function runConsumer(
  cwd: string,
  env: NodeJS.ProcessEnv,
  withinMs: number,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['app.mjs'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), withinMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').at(-1) ?? '';
      if (code !== 0) {
        reject(new Error(`the consumer app exited with ${code ?? signal}:\n${stderr}\n${stdout}`));
        return;
      }
      try {
        resolve(JSON.parse(line) as Record<string, unknown>);
      } catch {
        reject(new Error(`the consumer app printed no result:\n${stderr}\n${stdout}`));
      }
    });
  });
}

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.js'))
    .map((entry) => join(entry.parentPath, entry.name));
}

/** The packages a built module imports at run time (bare specifiers, reduced to package names). */
function importedPackages(file: string): string[] {
  const code = readFileSync(file, 'utf8');
  const specifiers = [
    ...code.matchAll(/^\s*(?:import|export)\s[^;]*?\bfrom\s*['"]([^'"]+)['"]/gm),
    ...code.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
    ...code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((m) => m[1]!);
  return specifiers
    .filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !builtinModules.includes(s))
    .map((s) =>
      s
        .split('/')
        .slice(0, s.startsWith('@') ? 2 : 1)
        .join('/'),
    );
}

function exportTargets(exports: unknown): string[] {
  if (typeof exports === 'string') return [exports];
  if (exports === null || typeof exports !== 'object') return [];
  return Object.values(exports).flatMap(exportTargets);
}

describe('the packed packages, installed outside the workspace', () => {
  let work: string;
  let app: string;
  let packed: Packed[];
  let store: Store | undefined;
  let b: TestBroker | undefined;
  let ticker: NodeJS.Timeout | undefined;

  beforeAll(async () => {
    for (const name of PACKAGES) {
      if (!existsSync(join(ROOT, 'packages', name, 'dist', 'index.js')))
        throw new Error(`packages/${name}/dist is missing: run npm run build first (npm test does)`);
    }
    work = mkdtempSync(join(tmpdir(), 'tether-packed-'));
    if (!relative(ROOT, work).startsWith(`..${sep}`)) throw new Error(`${work} is inside the workspace`);
    const tarballs = join(work, 'tarballs');
    app = join(work, 'app');
    mkdirSync(tarballs);
    mkdirSync(app);
    const packOutput = await npm(
      ['pack', '--json', '--pack-destination', tarballs, ...PACKAGES.map((name) => `./packages/${name}`)],
      ROOT,
    );
    packed = JSON.parse(packOutput) as Packed[];
    writeFileSync(
      join(app, 'package.json'),
      `${JSON.stringify({ name: 'tether-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`,
    );
    // fastify for the consumer's second server, at the workspace's version (in the npm cache).
    const fastify = JSON.parse(readFileSync(join(ROOT, 'node_modules/fastify/package.json'), 'utf8')) as {
      version: string;
    };
    await npm(
      [
        'install',
        ...packed.map((p) => join(tarballs, p.filename)),
        `fastify@${fastify.version}`,
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        '--ignore-scripts',
      ],
      app,
    );
    copyFileSync(join(ROOT, 'test/packaging/consumer/app.mjs'), join(app, 'app.mjs'));
  }, 240_000);

  afterAll(async () => {
    clearInterval(ticker);
    await b?.close();
    await store?.close().catch(() => undefined);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('packs built code, types, README and licence only, at ranges that find each other', () => {
    expect(packed.map((p) => p.name).sort()).toEqual(PACKAGES.map((name) => `@tether-broker/${name}`).sort());
    for (const p of packed) {
      const paths = p.files.map((f) => f.path);
      const strays = paths.filter(
        (path) => /\.test\.|test-fixtures|tsbuildinfo|(^|\/)src\//.test(path) || path.endsWith('.map'),
      );
      expect(strays, `${p.name} packs files users do not need`).toEqual([]);
      expect(paths, p.name).toEqual(
        expect.arrayContaining(['package.json', 'LICENSE', 'README.md', 'dist/index.js', 'dist/index.d.ts']),
      );
      const manifest = JSON.parse(
        readFileSync(join(ROOT, 'packages', p.name.split('/')[1]!, 'package.json'), 'utf8'),
      ) as { private?: boolean; license?: string; dependencies?: Record<string, string> };
      expect(manifest.private, p.name).toBeUndefined();
      expect(manifest.license, p.name).toBe('Apache-2.0');
      for (const [dep, range] of Object.entries(manifest.dependencies ?? {})) {
        if (dep.startsWith('@tether-broker/')) expect(range, `${p.name} → ${dep}`).toMatch(/^\^/);
      }
    }
  });

  it('declares every package its built code imports, and ships every export target', () => {
    for (const name of PACKAGES) {
      const dir = join(app, 'node_modules', '@tether-broker', name);
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        exports: unknown;
        dependencies?: Record<string, string>;
      };
      const declared = new Set(Object.keys(manifest.dependencies ?? {}));
      const undeclared = jsFiles(join(dir, 'dist')).flatMap((file) =>
        importedPackages(file)
          .filter((pkg) => !declared.has(pkg))
          .map((pkg) => `${relative(dir, file)} imports ${pkg}`),
      );
      expect(undeclared, `@tether-broker/${name} imports packages it does not declare`).toEqual([]);
      const missing = exportTargets(manifest.exports).filter((target) => !existsSync(join(dir, target)));
      expect(missing, `@tether-broker/${name} exports files it does not ship`).toEqual([]);
    }
  });

  it('protects a Node http server and a fastify server, and runs a session against a real broker', async () => {
    store = openStore({ location: join(work, 'broker.db') });
    await migrateToLatest(store);
    const port = await freePort();
    const brokerUrl = `http://127.0.0.1:${port}`;
    b = await startTestBroker(store, { config: { publicUrl: brokerUrl, heartbeatIntervalMs: 100 } });
    const broker = b;
    // The scenario's admin calls go in-process, signed for the broker's public URL.
    const clientOf = (identity: IdentityFile) =>
      new BrokerClient({
        identity: { ...identity, broker: brokerUrl },
        fetch: injectFetch(broker.app),
        now: () => broker.clock.now(),
      });
    const s = await setUpScenario({ ...broker, client: clientOf });
    const pep = await broker.principal('svc-pep', 'service', ['pep']);
    await s.admin.call('PUT', '/v1/peps/svc-pep/audiences', { audiences: [AUDIENCE] });
    await broker.app.listen({ port, host: '127.0.0.1' });
    // From here the broker's clock runs at real speed; the consumer keeps the same offset.
    const clockOffsetMs = broker.clock.now() - Date.now();
    ticker = setInterval(() => broker.clock.set(Date.now() + clockOffsetMs), 5);

    const identityFile = (name: string, identity: IdentityFile) => {
      const path = join(app, `${name}.json`);
      writeFileSync(path, JSON.stringify({ ...identity, broker: brokerUrl }), { mode: 0o600 });
      return path;
    };
    const config = {
      clockOffsetMs,
      audience: AUDIENCE,
      pepIdentity: identityFile('pep', pep.identity),
      clientIdentity: identityFile('pipeline', s.pipeline.identity),
    };
    const { NODE_OPTIONS: _nodeOptions, ...env } = process.env;
    const results = (await runConsumer(
      app,
      { ...env, TETHER_PACK_CONFIG: JSON.stringify(config) },
      90_000,
    )) as {
      resolved: Record<string, string>;
      sessionId: string;
      allowed: { status: number; body: { session: string; principal: string } };
      otherResource: { status: number; body: { code: string } };
      anonymous: { status: number; wwwAuthenticate: string | null };
      fastify: Record<
        'allowed' | 'otherResource' | 'afterEnd',
        { status: number; body: Record<string, unknown> }
      >;
      forged: Record<string, { status: number; contentType: string; body: { code: string } }>;
      coreVerified: { sid: string; jkt: boolean };
      receipt: { enforced: boolean; state: string };
      afterEnd: { status: number; wwwAuthenticate: string | null; body: { code: string } };
      problemMediaType: string;
      catalogued: boolean;
    };

    // Everything came from the project's own node_modules, not the workspace.
    for (const [name, path] of Object.entries(results.resolved)) {
      expect(path, name).toContain(join(app, 'node_modules', '@tether-broker'));
    }
    expect(results.allowed.status).toBe(200);
    expect(results.allowed.body).toEqual({
      released: '/releases/web',
      session: results.sessionId,
      principal: s.pipeline.caller.principal.id,
    });
    expect(results.otherResource).toMatchObject({ status: 403, body: { code: 'insufficient_scope' } });
    expect(results.fastify.allowed).toMatchObject({ status: 200, body: results.allowed.body });
    expect(results.fastify.otherResource).toMatchObject({
      status: 403,
      body: { code: 'insufficient_scope' },
    });
    expect(results.anonymous.status).toBe(401);
    expect(results.anonymous.wwwAuthenticate).toMatch(/^DPoP /);
    for (const [name, answer] of Object.entries(results.forged)) {
      expect(answer.status, name).toBe(401);
      expect(answer.body.code, name).toBe('invalid_token');
      expect(answer.contentType, name).toContain(results.problemMediaType);
    }
    expect(Object.keys(results.forged).sort()).toEqual(['tampered', 'unsigned']);
    expect(results.coreVerified).toEqual({ sid: results.sessionId, jkt: true });
    expect(results.receipt).toMatchObject({ state: 'ended', enforced: true });
    expect(results.afterEnd.status).toBe(401);
    expect(results.afterEnd.body.code).toBe('invalid_token');
    expect(results.afterEnd.wwwAuthenticate).toContain('invalid_token');
    expect(results.fastify.afterEnd).toMatchObject({ status: 401, body: { code: 'invalid_token' } });
    expect(results.catalogued).toBe(true);
  }, 120_000);
});
