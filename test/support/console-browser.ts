import type { BrokerClient } from '@tether-broker/client';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { expect } from 'vitest';

/** Debian's Chromium (the CI installs it), or the one `TETHER_CHROMIUM` names. */
const CHROMIUM = process.env.TETHER_CHROMIUM ?? '/usr/bin/chromium';

/** Headless Chromium for the console tests; `localhost` resolves to the broker's loopback. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--host-resolver-rules=MAP localhost 127.0.0.1'],
  });
}

/** A browser context with its own virtual platform authenticator (user verification on). */
export async function withAuthenticator(browser: Browser): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { context, page };
}

/** The page's own status line (not a receipt's). */
export const statusOf = (page: Page) => page.locator('main > #status').textContent();

/**
 * A person's browser, enrolled and signed in: an admin (`admin`) makes the invitation, the
 * person creates a passkey from it in a fresh context, then signs in with it (a click).
 */
export async function enrolAndSignIn(
  browser: Browser,
  admin: BrokerClient,
  origin: string,
  name: string,
): Promise<{ context: BrowserContext; page: Page; url: string }> {
  const { url } = await admin.call<{ url: string }>('POST', `/v1/principals/${name}/invitations`, {});
  const { context, page } = await withAuthenticator(browser);
  await page.goto(url);
  await page.getByRole('button', { name: 'Create a passkey' }).click();
  await expect.poll(() => statusOf(page)).toBe('Your passkey is ready. You can sign in now.');
  await page.goto(`${origin}/console`);
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await page.getByRole('heading', { name: `Signed in as ${name}` }).waitFor();
  return { context, page, url };
}
