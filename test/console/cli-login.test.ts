import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run } from '../../packages/cli/src/program.js';
import { loadIdentity } from '../../packages/client/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { enrolAndSignIn, launchChromium } from '../support/console-browser.js';
import { freePort } from '../support/processes.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * `tether login` (issue 13 item 1): the real CLI (in process) asks for a code, the person
 * confirms it in the console (signed in with a passkey in headless Chromium), and the CLI holds
 * a broker-API token bound to a key it made itself: no key file. `tether logout` ends it, and
 * the token stops working at once. Attacks: the device code polled with another key, a code
 * refused in the console, an unknown code (a code of another tenant is unknown in this one).
 */
describeEachStore('tether login through the console (device authorization)', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let origin: string;
  let browser: Browser;

  beforeAll(async () => {
    const port = await freePort();
    origin = `http://localhost:${port}`;
    b = await startTestBroker(await fixture.open(), { config: { publicUrl: origin } });
    b.clock.advance(Date.now() - b.clock.now());
    await b.app.listen({ port, host: 'localhost' });
    s = await setUpScenario(b);
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await b?.app.close();
    await fixture.cleanup();
  });

  const signedIn = async (name: string, admin = s.admin): Promise<Page> =>
    (await enrolAndSignIn(browser, admin, origin, name)).page;

  /** `tether login` in process, its stderr collected (the code is shown there), sleeping in real time. */
  function login(home: string) {
    const err: string[] = [];
    const out: string[] = [];
    const exited = run(['node', 'tether', 'login', '--broker', origin, '--tenant', 'acme'], {
      stdout: { write: (c) => out.push(String(c)) },
      stderr: { write: (c) => err.push(String(c)) },
      env: { TETHER_HOME: home },
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.min(ms, 200))),
    });
    const code = async () => {
      await expect.poll(() => err.join('')).toMatch(/enter the code [B-Z]{4}-[B-Z]{4}/);
      return /enter the code ([B-Z]{4}-[B-Z]{4})/.exec(err.join(''))?.[1] as string;
    };
    return { exited, code, out, err };
  }

  it('signs the CLI in with a code confirmed in the console; logout ends it everywhere at once', async () => {
    const home = mkdtempSync(join(tmpdir(), 'tether-login-'));
    const cli = login(home);
    const code = await cli.code();
    const page = await signedIn('olivia');
    await page.goto(`${origin}/console/device?code=${code}`);
    expect(await page.getByLabel('Code').inputValue()).toBe(code);
    await page.getByRole('button', { name: 'Allow this sign-in' }).click();
    await expect
      .poll(() => page.locator('#status').textContent())
      .toBe('Signed in: you can go back to the terminal.');
    expect(await cli.exited, cli.err.join('')).toBe(0);
    const path = join(home, 'login.json');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const identity = loadIdentity(path);
    expect(identity.principal).toBe(s.operator.caller.principal.id);
    expect(identity.login?.token).toBeTruthy();

    // The CLI now works as olivia with no key file (the login is its identity).
    const whoami: string[] = [];
    expect(
      await run(['node', 'tether', '--json', 'requests'], {
        stdout: { write: (c) => whoami.push(String(c)) },
        env: { TETHER_HOME: home },
      }),
    ).toBe(0);
    // The token alone, without the key it is bound to, is refused.
    const bare = await fetch(`${origin}/v1/requests`, {
      headers: { authorization: `Bearer ${identity.login?.token}` },
    });
    expect(bare.status).toBe(401);

    expect(
      await run(['node', 'tether', 'logout'], { stdout: { write: () => true }, env: { TETHER_HOME: home } }),
    ).toBe(0);
    // A copy of the sign-in kept elsewhere stops working at once.
    const { writeIdentity } = await import('../../packages/client/src/index.js');
    writeIdentity(path, identity);
    const after: string[] = [];
    expect(
      await run(['node', 'tether', 'requests'], {
        stdout: { write: () => true },
        stderr: { write: (c) => after.push(String(c)) },
        env: { TETHER_HOME: home },
      }),
    ).not.toBe(0);
    expect(after.join('')).toMatch(/login that obtained this token has ended/);
    await page.context().close();
  }, 90_000);

  it('refuses a code polled with another key, confirmed from another tenant, refused in the console, or unknown', async () => {
    const home = mkdtempSync(join(tmpdir(), 'tether-login-'));
    const cli = login(home);
    const code = await cli.code();
    // A person of another tenant cannot confirm it: in their tenant, the code does not exist.
    const globex = await startTestBroker(b.ctx.store, { reuse: b, tenantName: 'globex' });
    await globex.principal('gus');
    const gus = await signedIn('gus', globex.client(globex.adminIdentity));
    await gus.goto(`${origin}/console/device?code=${code}`);
    await gus.getByRole('button', { name: 'Allow this sign-in' }).click();
    await expect
      .poll(() => gus.locator('#status').textContent())
      .toMatch(/^Could not confirm the code: no sign-in waits/);
    await gus.context().close();
    const stranger = await signedIn('approver-1');
    // The person refuses it (it is not their sign-in): the CLI is told so and writes nothing.
    await stranger.goto(`${origin}/console/device?code=${code}`);
    await stranger.getByRole('button', { name: 'Refuse' }).click();
    await expect
      .poll(() => stranger.locator('#status').textContent())
      .toBe('Refused: that sign-in will not happen.');
    expect(await cli.exited).not.toBe(0);
    expect(cli.err.join('')).toMatch(/refused in the console/);
    expect(() => statSync(join(home, 'login.json'))).toThrow();
    // A code cannot be confirmed twice, nor guessed: an unknown code is refused.
    await stranger.getByLabel('Code').fill('BBBB-BBBB');
    await stranger.getByRole('button', { name: 'Allow this sign-in' }).click();
    await expect.poll(() => stranger.locator('#status').textContent()).toMatch(/^Could not confirm the code/);

    // A device code polled with a key other than the one that asked for it is refused.
    const { generateSessionKey, createDpopProof } = await import('../../packages/client/src/index.js');
    const asker = await generateSessionKey();
    const thief = await generateSessionKey();
    const post = async (path: string, form: Record<string, string>, key: typeof asker) =>
      fetch(`${origin}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          dpop: await createDpopProof(key, { method: 'POST', url: `${origin}${path}`, now: Date.now() }),
        },
        body: new URLSearchParams(form).toString(),
      }).then(async (r) => ({ status: r.status, body: await r.json() }));
    const started = await post('/oauth/device_authorization', { tenant: 'acme' }, asker);
    expect(started.status).toBe(200);
    const stolen = await post(
      '/oauth/token',
      { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: started.body.device_code },
      thief,
    );
    expect(stolen.body.error).toBe('invalid_grant');
    const pending = await post(
      '/oauth/token',
      { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: started.body.device_code },
      asker,
    );
    expect(pending.body.error).toBe('authorization_pending');
    await stranger.context().close();
  }, 90_000);
});
