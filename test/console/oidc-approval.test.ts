import type { Server } from 'node:http';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BoundSession } from '../../packages/client/src/index.js';
import { createEnforcer, type Enforcer } from '../../packages/pep/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { launchChromium, statusOf } from '../support/console-browser.js';
import { eventually } from '../support/eventually.js';
import {
  OIDC_CLIENT_ID,
  OIDC_CLIENT_SECRET,
  signInAtProvider,
  startTestOidcProvider,
} from '../support/oidc-provider.js';
import { setPepAudiences } from '../support/pep-link.js';
import { freePort } from '../support/processes.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * The console's approval end to end with every person signed in through the tenant's company
 * OpenID Connect provider (issue 13 acceptance: "the same approval through OIDC sign-in against
 * the test provider"), in real headless Chromium against a real oidc-provider: the requester
 * asks for `firewall-admin`, an approver (another browser) sees the reason and ticket and
 * approves, the requester sees the session, and after it ends an admin sees the receipt naming
 * the PEP that enforced the end. The requester cannot approve their own request this way either.
 */
describeEachStore('the console approval, signed in with the company provider', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let origin: string;
  let issuer: string;
  let provider: Server;
  let browser: Browser;
  let enforcer: Enforcer;

  beforeAll(async () => {
    const port = await freePort();
    origin = `http://localhost:${port}`;
    issuer = `http://127.0.0.1:${await freePort()}`;
    b = await startTestBroker(await fixture.open(), {
      config: {
        publicUrl: origin,
        heartbeatIntervalMs: 50,
        outboundAllowHosts: ['127.0.0.1'],
        outboundAllowHttp: true,
      },
    });
    b.clock.advance(Date.now() - b.clock.now());
    await b.app.listen({ port, host: 'localhost' });
    provider = startTestOidcProvider(issuer, origin);
    s = await setUpScenario(b);
    // Each person's company email, the attribute the provider's claim is matched to.
    for (const name of ['olivia', 'approver-0'])
      await s.admin.call('PATCH', `/v1/principals/${name}`, { attributes: { email: `${name}@example.com` } });
    await b.principal('ada', 'human', ['admin'], { email: 'ada@example.com' });
    await s.admin.call('PUT', '/v1/console/oidc', {
      issuer,
      client_id: OIDC_CLIENT_ID,
      client_secret: OIDC_CLIENT_SECRET,
    });
    const pep = await b.principal('edge-pep', 'service', ['pep']);
    await setPepAudiences(s.admin, pep, ['https://fw.example']);
    enforcer = createEnforcer({
      broker: origin,
      issuer: origin,
      audience: 'https://fw.example',
      tenant: b.tenant.id,
      publicBaseUrl: 'https://fw.example',
      identity: { principal: pep.identity.principal, key: pep.identity.key },
      now: () => b.clock.now(),
      reconnect: { minDelayMs: 20, maxDelayMs: 200 },
      decisions: false,
    });
    enforcer.start();
    await eventually(() => enforcer.state().fresh, 10_000, 'the PEP fresh');
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await enforcer?.close();
    await new Promise((resolve) => provider?.close(resolve));
    await b?.app.close();
    await fixture.cleanup();
  });

  const signedIn = async (name: string) => {
    const person = await signInAtProvider(
      browser,
      { origin, issuer, tenant: b.tenant.name },
      `${name}@example.com`,
    );
    await person.page.getByRole('heading', { name: `Signed in as ${name}` }).waitFor();
    return person;
  };

  it('asks, approves in another browser, shows the session and its receipt', async () => {
    const olivia = await signedIn('olivia');
    await olivia.page.getByLabel('Privilege', { exact: true }).selectOption('firewall-admin');
    await olivia.page.getByLabel('Ticket', { exact: true }).fill('CHG-31');
    await olivia.page.getByLabel('Reason', { exact: true }).fill('<img src=x onerror=alert(1)> rotate keys');
    await olivia.page.getByLabel('Minutes', { exact: true }).fill('45');
    await olivia.page.getByRole('button', { name: 'Ask' }).click();
    await expect.poll(() => statusOf(olivia.page)).toBe('Request: done.');
    const [request] = (
      await s.operator.client.call<{ requests: { id: string }[] }>(
        'GET',
        '/v1/requests?principal=olivia&state=pending',
      )
    ).requests;
    const id = request!.id;
    // The request is hers, asked in the console's session (the audit names the console sign-in).
    const asked = await s.admin.call<{ records: { action: string; actor: string }[] }>(
      'GET',
      '/v1/audit?principal=olivia&limit=50',
    );
    expect(asked.records.map((r) => r.action)).toContain('request.created');

    // Not hers to decide, even though she approves others' requests: refused in the console too.
    const self = await olivia.page.evaluate(async (rid) => {
      const me = await (await fetch('/console/api/me')).json();
      const res = await fetch(`/v1/requests/${rid}/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-tether-csrf': me.csrf },
        body: '{}',
      });
      return res.status;
    }, id);
    expect(self).toBe(403);

    const approver = await signedIn('approver-0');
    const item = approver.page.locator(`li[data-request="${id}"]`);
    await expect.poll(() => item.textContent()).toContain('<img src=x onerror=alert(1)> rotate keys');
    const text = (await item.textContent()) ?? '';
    expect(text).toContain('CHG-31');
    expect(text).toContain('by olivia');
    expect(await item.locator('img').count()).toBe(0);
    await approver.page.getByLabel(`Comment on ${id}`).fill('approved from the company sign-in');
    await approver.page.getByRole('button', { name: `Approve ${id}` }).click();
    await expect.poll(() => statusOf(approver.page)).toBe('Approve: done.');
    const approved = await s.operator.client.call<{ state: string }>('GET', `/v1/requests/${id}`);
    expect(approved.state).toBe('approved');

    const session = await BoundSession.activate(s.operator.client, id);
    await olivia.page.reload();
    const sessions = olivia.page.getByRole('list', { name: 'Your live sessions' });
    await expect.poll(() => sessions.textContent()).toContain('firewall-admin · CHG-31');
    await olivia.page.getByRole('button', { name: `End ${session.info.id}` }).click();
    await expect.poll(() => statusOf(olivia.page)).toBe('End session: done.');

    await eventually(async () => (await session.receipt()).enforced, 5000, 'the end enforced');
    const ada = await signedIn('ada');
    const row = ada.page.locator(`li[data-session="${session.info.id}"]`);
    await expect.poll(() => row.textContent()).toContain('ended (completed)');
    await ada.page.getByRole('button', { name: `Receipt of ${session.info.id}` }).click();
    await expect
      .poll(() => row.locator('.receipt').textContent())
      .toMatch(/^ended · enforced · PEPs: edge-pep at \d{4}-/);

    // Every sign-in of the three went through the provider.
    const signIns = await b.ctx.store.db
      .selectFrom('audit_records')
      .select(['details'])
      .where('action', '=', 'auth.console_signed_in')
      .where('outcome', '=', 'success')
      .execute();
    expect(signIns.map((r) => JSON.parse(r.details).method)).toEqual(['oidc', 'oidc', 'oidc']);
    for (const c of [olivia, approver, ada]) await c.context.close();
  }, 120_000);
});
