import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BrokerContext } from '../core/context.js';
import { consoleRoutes } from '../http/routes/console.js';
import { CONSOLE_HEADERS, CONSOLE_SCRIPT_PATH, readConsoleScript } from './pages.js';

/** What `readConsoleScript` finds, per test: the built bundle, or nothing. */
const built = vi.hoisted(() => ({ script: undefined as string | undefined }));
vi.mock('./pages.js', async (original) => ({
  ...(await original<typeof import('./pages.js')>()),
  readConsoleScript: () => built.script,
}));

const APP = fileURLToPath(new URL('../../console-app/src/', import.meta.url));

/** The console's routes alone, logging into `logs`. */
async function consoleApp(logs: string[]) {
  const logger = pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) });
  const app = Fastify();
  await app.register(consoleRoutes({ logger } as unknown as BrokerContext));
  return app;
}

describe('the console script', () => {
  afterEach(() => {
    built.script = undefined;
  });

  it('is read from dist/console-app of the broker package, whether the broker runs from src or dist', async () => {
    expect(CONSOLE_SCRIPT_PATH).toBe(
      fileURLToPath(new URL('../../dist/console-app/console.js', import.meta.url)),
    );
    const { readConsoleScript: real } = await vi.importActual<typeof import('./pages.js')>('./pages.js');
    expect(real('/nonexistent/console.js')).toBeUndefined();
    expect(readConsoleScript).not.toBe(real);
  });

  it('is served as built, under the console headers', async () => {
    built.script = 'export {};\n';
    const app = await consoleApp([]);
    const res = await app.inject({ method: 'GET', url: '/console/console.js' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(res.headers['content-security-policy']).toBe(CONSOLE_HEADERS['content-security-policy']);
    expect(res.body).toBe('export {};\n');
    await app.close();
  });

  it('when not built, is a 503 problem saying so, logged at start; the broker and its pages still run', async () => {
    const logs: string[] = [];
    const app = await consoleApp(logs);
    expect(logs.join('\n')).toContain('the console script is not built');
    const res = await app.inject({ method: 'GET', url: '/console/console.js' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.headers['content-security-policy']).toBe(CONSOLE_HEADERS['content-security-policy']);
    expect(res.json()).toMatchObject({ status: 503, detail: expect.stringContaining('npm run build') });
    expect((await app.inject({ method: 'GET', url: '/console' })).statusCode).toBe(200);
    await app.close();
  });

  it('writes API values as text only: the app never sets HTML, evaluates text or writes the document', () => {
    const sources = readdirSync(APP, { recursive: true, encoding: 'utf8' }).filter(
      (f) => /\.tsx?$/.test(f) && !f.endsWith('.test.ts'),
    );
    expect(sources.length).toBeGreaterThan(5);
    for (const file of sources) {
      const text = readFileSync(`${APP}${file}`, 'utf8');
      expect(text, file).not.toMatch(
        /dangerouslySetInnerHTML|innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/,
      );
    }
  });
});
