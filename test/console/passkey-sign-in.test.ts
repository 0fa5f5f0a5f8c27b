import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run } from '../../packages/cli/src/program.js';
import { writeIdentity } from '../../packages/client/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { launchChromium, withAuthenticator } from '../support/console-browser.js';
import { freePort } from '../support/processes.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Console sign-in (issue 13 items 1 and 2) in real headless Chromium with a virtual WebAuthn
 * authenticator: a person enrols their own passkey from the one-time link an admin made, signs
 * in with it, and the console session (a cookie) authenticates the same /v1 API the CLI uses.
 * The attacks: an enrolment link used twice, a change without the CSRF header, the cookie used
 * after sign-out, a disabled person, a passkey row moved to another principal in the store, a
 * requester's reason holding HTML.
 */
describeEachStore('console sign-in with passkeys', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let origin: string;
  let browser: Browser;
  /** olivia's pending firewall-admin request, made in the first test. */
  let pendingId: string;

  beforeAll(async () => {
    const port = await freePort();
    origin = `http://localhost:${port}`;
    b = await startTestBroker(await fixture.open(), { config: { publicUrl: origin } });
    // The CLI signs with the real clock: the broker's manual clock joins it.
    b.clock.advance(Date.now() - b.clock.now());
    await b.app.listen({ port, host: '127.0.0.1' });
    s = await setUpScenario(b);
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await b?.app.close();
    await fixture.cleanup();
  });

  const status = (page: Page) => page.getByRole('status');

  /** Enrols `name`'s passkey in a fresh context and signs in with the keyboard alone. */
  async function enrolAndSignIn(name: string) {
    const { url } = await s.admin.call<{ url: string }>('POST', `/v1/principals/${name}/invitations`, {});
    expect(url.startsWith(`${origin}/console/enrol#`)).toBe(true);
    const { context, page } = await withAuthenticator(browser);
    await page.goto(url);
    await page.getByRole('button', { name: 'Create a passkey' }).click();
    await expect.poll(() => status(page).textContent()).toBe('Your passkey is ready. You can sign in now.');
    await page.goto(`${origin}/console`);
    // Keyboard only: the sign-in button is reachable with Tab and works with Enter.
    const signIn = page.getByRole('button', { name: 'Sign in with a passkey' });
    await signIn.waitFor();
    await page.keyboard.press('Tab');
    await expect.poll(() => signIn.evaluate((el) => el === document.activeElement)).toBe(true);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: `Signed in as ${name}` }).waitFor();
    return { context, page, url };
  }

  const consoleCookie = async (context: BrowserContext) =>
    (await context.cookies()).find((c) => c.name === 'tether_console');

  it('enrols a passkey from a one-time link, signs in, and shows a reason with HTML as text', async () => {
    ({ id: pendingId } = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-1',
      justification: '<img src=x onerror="document.title=\'pwned\'"> open 443',
      duration: 3600,
    }));
    const { context, page, url } = await enrolAndSignIn('olivia');
    const cookie = await consoleCookie(context);
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    const pending = page.getByRole('list', { name: 'Your requests' });
    await expect
      .poll(() => pending.textContent())
      .toContain('<img src=x onerror="document.title=\'pwned\'"> open 443');
    expect(await pending.locator('img').count()).toBe(0);
    expect(await page.title()).not.toBe('pwned');
    // The page is served under a CSP that forbids inline script.
    const home = await fetch(`${origin}/console`);
    expect(home.headers.get('content-security-policy')).toContain("script-src 'self'");

    // The link is spent: a second use (another device, an attacker who saw it) is refused.
    const token = url.split('#')[1];
    const again = await fetch(`${origin}/console/api/enrol/options`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ invitation: token }),
    });
    expect(again.status).toBe(401);
    expect((await again.json()).code).toBe('passkey_refused');
    await context.close();
  }, 60_000);

  it('lets an admin make the link with `tether principal invite`', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-invite-'));
    const identity = join(dir, 'admin.json');
    writeIdentity(identity, b.adminIdentity);
    const invitations = () =>
      b.ctx.store.db
        .selectFrom('console_invitations')
        .select('token_hash')
        .where('principal_id', '=', s.approvers[2]!.caller.principal.id)
        .execute();
    expect(await invitations()).toHaveLength(0);
    expect(
      await run(['node', 'tether', '--json', '--identity', identity, 'principal', 'invite', 'approver-2']),
    ).toBe(0);
    expect(await invitations()).toHaveLength(1);
    // A pipeline has no passkey to enrol.
    expect(
      await run(['node', 'tether', '--json', '--identity', identity, 'principal', 'invite', 'deploy-bot']),
    ).not.toBe(0);
  });

  it('approves through the console with its CSRF token; refuses a forged change and the cookie after sign-out', async () => {
    const { context, page } = await enrolAndSignIn('approver-0');
    const cookie = `tether_console=${(await consoleCookie(context))?.value}`;
    const state = async () =>
      (
        (await (await fetch(`${origin}/v1/requests/${pendingId}`, { headers: { cookie } })).json()) as {
          state: string;
        }
      ).state;
    // The cookie alone reads (same API, same roles) …
    expect(await state()).toBe('pending');
    // … but a change without the session's CSRF token is refused: what a forged cross-site
    // form or script would send; the request stays pending.
    for (const headers of [{}, { 'x-tether-csrf': 'guessed' }]) {
      const forged = await fetch(`${origin}/v1/requests/${pendingId}/approve`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/json', ...headers },
        body: '{}',
      });
      expect(forged.status).toBe(403);
    }
    expect(await state()).toBe('pending');
    // From the page itself, with its token, the approval goes through the same API and policy.
    const approved = await page.evaluate(async (id) => {
      const me = await (await fetch('/console/api/me')).json();
      const res = await fetch(`/v1/requests/${id}/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-tether-csrf': me.csrf },
        body: JSON.stringify({ comment: 'ok from the console' }),
      });
      return res.status;
    }, pendingId);
    expect(approved).toBe(200);
    expect(await state()).toBe('approved');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in with a passkey' }).waitFor();
    // The stolen cookie, replayed from elsewhere after sign-out, opens nothing.
    expect((await fetch(`${origin}/v1/requests`, { headers: { cookie } })).status).toBe(401);
    expect((await fetch(`${origin}/console/api/me`, { headers: { cookie } })).status).toBe(401);
    await context.close();
  }, 60_000);

  it('ends the console session of a disabled person, and refuses a passkey moved to another principal', async () => {
    const { context, page } = await enrolAndSignIn('approver-1');
    const cookie = `tether_console=${(await consoleCookie(context))?.value}`;
    expect((await fetch(`${origin}/v1/requests`, { headers: { cookie } })).status).toBe(200);
    await s.admin.call('PATCH', '/v1/principals/approver-1', { enabled: false });
    expect((await fetch(`${origin}/v1/requests`, { headers: { cookie } })).status).toBe(401);
    await s.admin.call('PATCH', '/v1/principals/approver-1', { enabled: true });
    // Still ended: re-enabling does not revive a session.
    expect((await fetch(`${origin}/v1/requests`, { headers: { cookie } })).status).toBe(401);

    // Someone with write access to the store moves approver-1's passkey to the admin: its seal
    // is bound to approver-1, so it signs nobody in.
    await b.ctx.store.db
      .updateTable('passkeys')
      .set({ principal_id: b.admin.principal.id })
      .where('principal_id', '=', s.approvers[1]!.caller.principal.id)
      .execute();
    // The same page (its virtual authenticator holds the passkey) signs in again.
    await page.goto(`${origin}/console`);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await expect
      .poll(() => status(page).textContent())
      .toMatch(/^Sign-in failed: this passkey is not known here/);
    expect(await page.getByRole('heading', { name: /Signed in as/ }).isVisible()).toBe(false);
    await context.close();
  }, 60_000);
});
