import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BoundSession } from '../../packages/client/src/index.js';
import { createEnforcer, type Enforcer } from '../../packages/pep/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { enrolAndSignIn, launchChromium, statusOf } from '../support/console-browser.js';
import { eventually } from '../support/eventually.js';
import { setPepAudiences } from '../support/pep-link.js';
import { freePort } from '../support/processes.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/** Set to a folder to keep screenshots of the main pages (the README's come from here). */
const SHOTS = process.env.TETHER_CONSOLE_SCREENSHOTS;
const shot = async (page: Page, name: string) => {
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
};

/**
 * The console end to end (issue 13 acceptance), in real headless Chromium, each person in their
 * own browser context with their own virtual passkey: a requester asks for `firewall-admin`, an
 * approver sees the reason and ticket and approves, the requester's session shows, and after it
 * ends the admin sees its revocation receipt naming the PEP that enforced the end. Attacks:
 * self-approval through the console, and an approver of one tenant reaching another's records.
 */
describeEachStore('the console: ask, approve, see the session, its receipt', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let origin: string;
  let browser: Browser;
  let enforcer: Enforcer;

  beforeAll(async () => {
    const port = await freePort();
    origin = `http://localhost:${port}`;
    b = await startTestBroker(await fixture.open(), {
      config: { publicUrl: origin, heartbeatIntervalMs: 50 },
    });
    b.clock.advance(Date.now() - b.clock.now());
    // Both loopback addresses: the PEP's fetch resolves localhost like any client would.
    await b.app.listen({ port, host: 'localhost' });
    s = await setUpScenario(b);
    await b.principal('ada', 'human', ['admin']);
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
    await b?.app.close();
    await fixture.cleanup();
  });

  /** A person's browser: their own context and virtual passkey, enrolled and signed in. */
  const signedIn = (name: string) => enrolAndSignIn(browser, s.admin, origin, name);

  it('takes a request from ask to approval to session to receipt, each step in the console', async () => {
    const olivia = await signedIn('olivia');
    // Every control of the form has a label (found by it, as a screen reader would).
    await olivia.page.getByLabel('Privilege', { exact: true }).selectOption('firewall-admin');
    await olivia.page.getByLabel('Ticket', { exact: true }).fill('NET-7');
    await olivia.page.getByLabel('Reason', { exact: true }).fill('<b>open</b> 443 for the release');
    await olivia.page.getByLabel('Minutes', { exact: true }).fill('60');
    await shot(olivia.page, 'requester');
    await olivia.page.getByRole('button', { name: 'Ask' }).click();
    await expect.poll(() => statusOf(olivia.page)).toBe('Request: done.');
    const mine = olivia.page.getByRole('list', { name: 'Your requests' });
    await expect.poll(() => mine.textContent()).toContain('<b>open</b> 443 for the release');
    const [request] = (
      await s.operator.client.call<{ requests: { id: string; state: string }[] }>(
        'GET',
        '/v1/requests?principal=olivia&state=pending',
      )
    ).requests;
    expect(request).toBeDefined();
    const id = request!.id;
    // olivia is an approver too, but her own request is not hers to decide: not offered, and refused if forced.
    const waitingForOlivia = olivia.page.getByRole('list', { name: 'Requests waiting for a decision' });
    expect(await waitingForOlivia.textContent()).not.toContain(id);
    const forced = await olivia.page.evaluate(async (rid) => {
      const me = await (await fetch('/console/api/me')).json();
      const res = await fetch(`/v1/requests/${rid}/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-tether-csrf': me.csrf },
        body: '{}',
      });
      return res.status;
    }, id);
    expect(forced).toBe(403);

    const approver = await signedIn('approver-0');
    const item = approver.page.locator(`li[data-request="${id}"]`);
    await expect.poll(() => item.textContent()).toContain('<b>open</b> 443 for the release');
    const text = (await item.textContent()) ?? '';
    expect(text).toContain('NET-7');
    expect(text).toContain('by olivia');
    expect(text).toContain('actions firewall:rules.write on firewall/edge-*');
    expect(await item.locator('b').count()).toBe(0);
    await approver.page.getByLabel(`Comment on ${id}`).fill('ok, change window open');
    await shot(approver.page, 'approver');
    await approver.page.getByRole('button', { name: `Approve ${id}` }).click();
    await expect.poll(() => statusOf(approver.page)).toBe('Approve: done.');

    // olivia activates with her CLI identity (a session is bound to a key her tools hold).
    const session = await BoundSession.activate(s.operator.client, id);
    await olivia.page.reload();
    const sessions = olivia.page.getByRole('list', { name: 'Your live sessions' });
    await expect.poll(() => sessions.textContent()).toContain('firewall-admin · NET-7');
    await olivia.page.getByRole('button', { name: `30 more minutes for ${session.info.id}` }).click();
    await expect.poll(() => statusOf(olivia.page)).toBe('Ask for more time: done.');
    await olivia.page.getByRole('button', { name: `End ${session.info.id}` }).click();
    await expect.poll(() => statusOf(olivia.page)).toBe('End session: done.');

    // The admin sees the ended session and its receipt: the PEP that enforced the end, when.
    await eventually(async () => (await session.receipt()).enforced, 5000, 'the end enforced');
    const admin = await signedIn('ada');
    const row = admin.page.locator(`li[data-session="${session.info.id}"]`);
    await expect.poll(() => row.textContent()).toContain('ended (completed)');
    await admin.page.getByRole('button', { name: `Receipt of ${session.info.id}` }).click();
    await expect
      .poll(() => row.locator('.receipt').textContent())
      .toMatch(/^ended · enforced · PEPs: edge-pep at \d{4}-/);
    await admin.page.getByRole('button', { name: `Audit trail of ${session.info.id}` }).click();
    const trail = admin.page.getByRole('list', { name: `Audit trail of ${session.info.id}` });
    await expect.poll(() => trail.textContent()).toContain('session.ended');
    expect(await trail.textContent()).toContain('session.activated');
    await admin.page.getByLabel('Revoke every session of a').selectOption('ticket');
    await admin.page.getByLabel('named', { exact: true }).fill('NET-7');
    await admin.page.getByRole('button', { name: 'Revoke them' }).click();
    await expect.poll(() => statusOf(admin.page)).toBe('Revoked 0 session(s).');
    await admin.page.getByRole('button', { name: 'Verify the audit trail' }).click();
    await expect
      .poll(() => statusOf(admin.page))
      .toMatch(/^The audit trail verifies: \d+ records checked\.$/);
    await shot(admin.page, 'admin');
    for (const c of [olivia, approver, admin]) await c.context.close();
  }, 90_000);

  it("keeps an approver of one tenant out of another tenant's records", async () => {
    const other = await startTestBroker(b.ctx.store, { reuse: b, tenantName: 'globex' });
    const otherScenario = await setUpScenario(other);
    const { id } = await otherScenario.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-9',
      justification: 'globex work',
      duration: 600,
    });
    const approver = await signedIn('approver-1');
    const outcome = await approver.page.evaluate(async (rid) => {
      const me = await (await fetch('/console/api/me')).json();
      const read = await fetch(`/v1/requests/${rid}`);
      const approve = await fetch(`/v1/requests/${rid}/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-tether-csrf': me.csrf },
        body: '{}',
      });
      const list = await (await fetch('/v1/requests?limit=1000')).json();
      return { read: read.status, approve: approve.status, listed: JSON.stringify(list).includes(rid) };
    }, id);
    expect(outcome).toEqual({ read: 404, approve: 404, listed: false });
    const still = await otherScenario.operator.client.call<{ state: string }>('GET', `/v1/requests/${id}`);
    expect(still.state).toBe('pending');
    await approver.context.close();
  }, 60_000);

  it('asks for the passkey again before an approval the privilege wants freshly verified; a key file cannot approve it', async () => {
    await s.admin.call('PATCH', '/v1/privileges/firewall-admin', { approval: { fresh_verification: 60 } });
    try {
      const { id } = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
        privilege: 'firewall-admin',
        ticket: 'NET-11',
        justification: 'needs a verified approver',
        duration: 600,
      });
      // An approver with a key file (the CLI) is refused: no passkey verification at all.
      await expect(
        s.approvers[2]!.client.call('POST', `/v1/requests/${id}/approve`, {}),
      ).rejects.toMatchObject({
        code: 'fresh_verification_required',
      });
      const approver = await signedIn('approver-0');
      // The passkey sign-in is two minutes old: older than the privilege allows.
      b.clock.advance(120_000);
      await approver.page.reload();
      await approver.page.getByRole('button', { name: `Approve ${id}` }).click();
      await expect.poll(() => statusOf(approver.page)).toBe('Approve: done.');
      const approved = await s.operator.client.call<{ state: string }>('GET', `/v1/requests/${id}`);
      expect(approved.state).toBe('approved');
      const trail = await s.admin.call<{ records: { action: string; outcome: string }[] }>(
        'GET',
        `/v1/audit?principal=approver-0`,
      );
      expect(trail.records.map((r) => r.action)).toContain('auth.console_verified');
      await approver.context.close();
    } finally {
      await s.admin.call('PATCH', '/v1/privileges/firewall-admin', {
        approval: { fresh_verification: null },
      });
    }
  }, 60_000);
});
