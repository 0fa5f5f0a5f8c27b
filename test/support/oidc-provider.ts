import type { Server } from 'node:http';
import Provider from 'oidc-provider';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { expect } from 'vitest';

/** The console's client at the test provider. */
export const OIDC_CLIENT_ID = 'tether-console';
export const OIDC_CLIENT_SECRET = 'oidc-client-secret-7f3a9c1e5b2d4f60';

/**
 * A real OpenID Connect provider (panva's oidc-provider) on loopback, with its development
 * login and consent pages: the login typed there is the account's email, and the ID token
 * carries it as `email`. Its one client is the console at `origin`.
 */
export function startTestOidcProvider(issuer: string, origin: string): Server {
  const oidc = new Provider(issuer, {
    clients: [
      {
        client_id: OIDC_CLIENT_ID,
        client_secret: OIDC_CLIENT_SECRET,
        redirect_uris: [`${origin}/console/oidc/callback`],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, email: sub, email_verified: true }),
    }),
    conformIdTokenClaims: false,
    cookies: { keys: ['oidc-provider-test-cookie-key'] },
    features: { devInteractions: { enabled: true } },
  });
  return oidc.listen(Number(new URL(issuer).port), '127.0.0.1');
}

export interface CompanySignIn {
  context: BrowserContext;
  page: Page;
  /** With `hold`: the provider's redirect back to the broker, not followed. */
  callback: string;
  /** The browser's flow cookie (`tether_oidc_flow`). */
  flow: string;
}

/**
 * Opens the console for `tenant` in a fresh browser context, follows the company sign-in link
 * and signs in at the provider as `login`. With `hold`, the provider's redirect back is caught
 * and not followed: its URL and the browser's flow cookie are answered.
 */
export async function signInAtProvider(
  browser: Browser,
  at: { origin: string; issuer: string; tenant: string },
  login: string,
  hold = false,
): Promise<CompanySignIn> {
  const { origin, issuer, tenant } = at;
  const context = await browser.newContext();
  const page = await context.newPage();
  // The provider's development pages import a web font: nothing leaves the machine.
  await context.route(/fonts\.googleapis\.com/, (route) => route.abort());
  let callback: string | undefined;
  // A route sees no redirect's target: the consent is posted here, and the provider's redirects
  // followed by hand (with the context's cookies) up to the callback URL, which is held back.
  if (hold)
    await context.route(`${issuer}/interaction/**`, async (route) => {
      if (!route.request().postData()?.includes('prompt=consent')) return route.continue();
      let answer = await route.fetch({ maxRedirects: 0 });
      for (let hop = 0; hop < 5 && callback === undefined; hop++) {
        const location = new URL(answer.headers().location as string, issuer).href;
        if (location.startsWith(`${origin}/console/oidc/callback`)) callback = location;
        else answer = await context.request.get(location, { maxRedirects: 0 });
      }
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'held' });
    });
  await page.goto(`${origin}/console?tenant=${tenant}`);
  await page.getByRole('link', { name: 'Sign in with your company account' }).click();
  await page.locator('input[name=login]').fill(login);
  await page.locator('input[name=password]').fill('any');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await page.getByRole('button', { name: 'Continue' }).click();
  if (hold) await expect.poll(() => callback, { timeout: 15_000 }).toBeDefined();
  const flow = (await context.cookies()).find((c) => c.name === 'tether_oidc_flow')?.value;
  return { context, page, callback: callback as string, flow: flow as string };
}
