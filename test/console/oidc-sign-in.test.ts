import type { Server } from 'node:http';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BrokerClient } from '../../packages/client/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { launchChromium } from '../support/console-browser.js';
import {
  OIDC_CLIENT_ID as CLIENT_ID,
  OIDC_CLIENT_SECRET as CLIENT_SECRET,
  signInAtProvider as signInWithCompany,
  startTestOidcProvider,
} from '../support/oidc-provider.js';
import { freePort } from '../support/processes.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Console sign-in with the tenant's company OpenID Connect provider (issue 13 item 1), against a
 * real provider (oidc-provider, its development login and consent pages) in real headless
 * Chromium: a person signs in at the provider, is mapped by their email claim to the human
 * principal with that email attribute, and lands on the console signed in; the cookie
 * authenticates /v1. The attacks: a tampered state, a callback replayed, a callback carried to
 * another browser, an account that maps to nobody (nobody is created), a disabled person, a
 * pipeline with the same attribute; the client secret never answered or logged.
 */
describeEachStore('console sign-in with a company OpenID Connect provider', (fixture) => {
  let b: TestBroker;
  let admin: BrokerClient;
  let origin: string;
  let issuer: string;
  let provider: Server;
  let browser: Browser;
  /** alice's console cookie from her company sign-in. */
  let aliceCookie = '';
  /** Every answer of the admin API, for the secret check. */
  const answers: unknown[] = [];

  beforeAll(async () => {
    const port = await freePort();
    const providerPort = await freePort();
    origin = `http://localhost:${port}`;
    issuer = `http://127.0.0.1:${providerPort}`;
    b = await startTestBroker(await fixture.open(), {
      config: { publicUrl: origin, outboundAllowHosts: ['127.0.0.1'], outboundAllowHttp: true },
    });
    // openid-client checks the ID token's times on the broker's clock: it joins the real one.
    b.clock.advance(Date.now() - b.clock.now());
    await b.app.listen({ port, host: '127.0.0.1' });
    provider = startTestOidcProvider(issuer, origin);
    admin = b.client(b.adminIdentity);
    await b.principal('alice', 'human', [], { email: 'alice@example.com' });
    await b.principal('dave', 'human', [], { email: 'dave@example.com' });
    await b.principal('build-bot', 'pipeline', [], { email: 'bot@example.com' });
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => provider?.close(resolve));
    await b?.app.close();
    await fixture.cleanup();
  });

  const count = async (table: 'console_sessions' | 'principals') =>
    Number(
      (
        await b.ctx.store.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirst()
      )?.n,
    );

  const signInAtProvider = (login: string, hold = false) =>
    signInWithCompany(browser, { origin, issuer, tenant: b.tenant.name }, login, hold);

  const failure = (page: Page) => page.getByRole('alert');
  const consoleCookie = async (context: BrowserContext) =>
    (await context.cookies(origin)).find((c) => c.name === 'tether_console');
  const callAs = (url: string, cookie?: string) =>
    fetch(url, { redirect: 'manual', headers: cookie === undefined ? {} : { cookie } });

  it('lets an admin set the provider; the secret is never answered', async () => {
    // Nothing configured: no link, and the same answer for a tenant that does not exist.
    const before = await (
      await fetch(`${origin}/console/api/sign-in-methods?tenant=${b.tenant.name}`)
    ).json();
    expect(before).toEqual({ oidc: false });
    // An admin-chosen URL to a private address the operator did not allow is refused.
    await expect(
      admin.call('PUT', '/v1/console/oidc', {
        issuer: 'http://10.0.0.5',
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
      }),
    ).rejects.toMatchObject({ code: 'destination_refused' });
    // The first configuration needs the secret.
    await expect(
      admin.call('PUT', '/v1/console/oidc', { issuer, client_id: CLIENT_ID }),
    ).rejects.toMatchObject({
      code: 'invalid_request',
    });
    const set = await admin.call<Record<string, unknown>>('PUT', '/v1/console/oidc', {
      issuer,
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
    });
    answers.push(set);
    expect(set).toMatchObject({
      issuer,
      client_id: CLIENT_ID,
      scopes: ['openid', 'email', 'profile'],
      claim: 'email',
      attribute: 'email',
      redirect_uri: `${origin}/console/oidc/callback`,
    });
    expect(set).not.toHaveProperty('client_secret');
    // Changing the scopes keeps the sealed secret.
    answers.push(
      await admin.call('PUT', '/v1/console/oidc', {
        issuer,
        client_id: CLIENT_ID,
        scopes: ['openid', 'email'],
      }),
    );
    answers.push(await admin.call('GET', '/v1/console/oidc'));
    answers.push(await admin.call('GET', '/v1/audit?limit=100'));
    const known = await (await fetch(`${origin}/console/api/sign-in-methods?tenant=${b.tenant.name}`)).json();
    const unknown = await (await fetch(`${origin}/console/api/sign-in-methods?tenant=no-such-tenant`)).json();
    expect(known).toEqual({ oidc: true });
    expect(unknown).toEqual({ oidc: false });
  });

  it('signs a person in with the provider; the console cookie authenticates /v1', async () => {
    const sessions = await count('console_sessions');
    const { context, page } = await signInAtProvider('alice@example.com');
    await page.getByRole('heading', { name: 'Signed in as alice' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/console');
    const cookie = await consoleCookie(context);
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    aliceCookie = `tether_console=${cookie?.value}`;
    expect((await callAs(`${origin}/v1/requests`, aliceCookie)).status).toBe(200);
    expect(await count('console_sessions')).toBe(sessions + 1);
    const signedIn = await b.ctx.store.db
      .selectFrom('audit_records')
      .selectAll()
      .where('action', '=', 'auth.console_signed_in')
      .where('outcome', '=', 'success')
      .execute();
    expect(signedIn.map((r) => JSON.parse(r.details).method)).toContain('oidc');
    await context.close();
  }, 60_000);

  it('refuses a tampered state, a replayed callback and a callback carried to another browser', async () => {
    const sessions = await count('console_sessions');
    const { context, callback, flow } = await signInAtProvider('alice@example.com', true);
    expect(callback).toContain('code=');
    expect(flow).toBeDefined();
    const withFlow = `tether_oidc_flow=${flow}`;
    // A state the broker never gave.
    const tampered = new URL(callback);
    tampered.searchParams.set('state', `${tampered.searchParams.get('state')}x`);
    const forged = await callAs(tampered.href, withFlow);
    expect(forged.status).toBe(400);
    expect(await forged.text()).toContain('not valid');
    // The genuine callback in another browser (no flow cookie): refused, and the flow is spent.
    const elsewhere = await callAs(callback);
    expect(elsewhere.status).toBe(400);
    expect(await elsewhere.text()).toContain('another browser');
    const after = await callAs(callback, withFlow);
    expect(after.status).toBe(400);
    expect(await count('console_sessions')).toBe(sessions);
    await context.close();

    // A genuine callback works once; the same code and state again are refused.
    const second = await signInAtProvider('alice@example.com', true);
    const cookieHeader = `tether_oidc_flow=${second.flow}`;
    const first = await callAs(second.callback, cookieHeader);
    expect(first.status).toBe(302);
    expect(first.headers.get('location')).toBe('/console');
    expect(first.headers.getSetCookie().some((c) => c.startsWith('tether_console='))).toBe(true);
    const replayed = await callAs(second.callback, cookieHeader);
    expect(replayed.status).toBe(400);
    expect(await replayed.text()).toContain('not valid (used, expired or unknown)');
    expect(await count('console_sessions')).toBe(sessions + 1);
    await second.context.close();
  }, 90_000);

  it('refuses an account that maps to nobody, creating no one, and a pipeline with the same attribute', async () => {
    const principals = await count('principals');
    const sessions = await count('console_sessions');
    for (const login of ['nobody@example.com', 'bot@example.com']) {
      const { context, page } = await signInAtProvider(login);
      await expect
        .poll(() => failure(page).textContent(), { timeout: 15_000 })
        .toBe('no person here matches this company account');
      await context.close();
    }
    expect(await count('principals')).toBe(principals);
    expect(await count('console_sessions')).toBe(sessions);
    const refusals = await b.ctx.store.db
      .selectFrom('audit_records')
      .selectAll()
      .where('action', '=', 'auth.console_signed_in')
      .where('outcome', '=', 'refused')
      .execute();
    expect(refusals.map((r) => JSON.parse(r.details).reason)).toContain(
      'no person here matches this company account',
    );
  }, 60_000);

  it('refuses a disabled person', async () => {
    await admin.call('PATCH', '/v1/principals/dave', { enabled: false });
    const sessions = await count('console_sessions');
    const { context, page } = await signInAtProvider('dave@example.com');
    await expect.poll(() => failure(page).textContent(), { timeout: 15_000 }).toBe('this person is disabled');
    expect(await count('console_sessions')).toBe(sessions);
    await context.close();
  }, 60_000);

  it('never answers, logs or audits the client secret; removing the provider ends its sessions', async () => {
    const audit = await b.ctx.store.db.selectFrom('audit_records').select(['details']).execute();
    const stored = await b.ctx.store.db.selectFrom('console_oidc_configs').selectAll().execute();
    expect(JSON.stringify(answers)).not.toContain(CLIENT_SECRET);
    expect(b.logs.join('\n')).not.toContain(CLIENT_SECRET);
    expect(JSON.stringify(audit)).not.toContain(CLIENT_SECRET);
    expect(JSON.stringify(stored)).not.toContain(CLIENT_SECRET);
    // Removed: the link goes away.
    answers.push(await admin.call('DELETE', '/v1/console/oidc'));
    expect(
      await (await fetch(`${origin}/console/api/sign-in-methods?tenant=${b.tenant.name}`)).json(),
    ).toEqual({
      oidc: false,
    });
    const start = await callAs(`${origin}/console/oidc/${b.tenant.name}/start`);
    expect(start.status).toBe(404);
    // The console sessions it started end with it.
    expect((await callAs(`${origin}/v1/requests`, aliceCookie)).status).toBe(401);
  });
});
