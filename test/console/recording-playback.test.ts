import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BoundSession, SessionRecorder } from '../../packages/client/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { enrolAndSignIn, launchChromium } from '../support/console-browser.js';
import { freePort } from '../support/processes.js';
import { SCENARIO_POLICIES, type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/** Set to a folder to keep a screenshot of the player (as console-flow.test.ts does of its pages). */
const SHOTS = process.env.TETHER_CONSOLE_SCREENSHOTS;

/** What the recorded session printed, one line a second, then a minute of silence, then the end. */
const STEPS = 24;
const IDLE_MS = 60_000;
const LAST = '<b>done</b> <img src=x onerror="document.title=\'pwned\'">';
const printed = [
  '$ deploy web\n',
  ...Array.from({ length: STEPS }, (_, i) => `step ${i + 1} ok\n`),
  `${LAST}\n`,
].join('');

/**
 * The console's recording player (issue: the console moves to Preact), in real headless
 * Chromium: an admin opens a recorded session's recording and plays it with the keyboard alone;
 * the output appears progressively, by its timing (a minute of silence played as 2 s), and
 * completely, as text (escapes stripped, markup shown, never parsed); every control has a name.
 * And the ask form offers only what the person may ask for.
 */
describeEachStore("the console's recording player and ask form", (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let origin: string;
  let browser: Browser;
  let recorded: string;

  beforeAll(async () => {
    const port = await freePort();
    origin = `http://localhost:${port}`;
    b = await startTestBroker(await fixture.open(), { config: { publicUrl: origin } });
    // The client signs with the real clock: the broker's manual clock joins it.
    b.clock.advance(Date.now() - b.clock.now());
    await b.app.listen({ port, host: '127.0.0.1' });
    s = await setUpScenario(b);
    await b.principal('ada', 'human', ['admin']);
    await s.admin.call('PATCH', '/v1/privileges/deploy', { recording: 'output' });
    // The pipeline's deploy is approved by policy; its session runs recorded.
    const { id } = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-12',
      justification: 'release 4.2',
      duration: 900,
    });
    const session = await BoundSession.activate(s.pipeline.client, id);
    recorded = session.info.id;
    // The recorder's clock is the test's: each line a second after the last, then the silence.
    let now = 0;
    const lost: string[] = [];
    const recorder = new SessionRecorder(session, {
      onLost: (why) => lost.push(why),
      flushIntervalMs: 60_000,
      now: () => now,
    });
    recorder.start(80, 24);
    recorder.output('\u001b]0;deploy\u0007$ deploy web\r\n');
    for (let i = 1; i <= STEPS; i++) {
      now = i * 1000;
      recorder.output(`\u001b[32mstep ${i}\u001b[0m ok\r\n`);
    }
    now += IDLE_MS;
    recorder.output(`\u001b[1m${LAST}\u001b[0m\r\n`);
    expect(await recorder.close()).toBe(true);
    expect(lost).toEqual([]);
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await b?.app.close();
    await fixture.cleanup();
  });

  const focused = (page: Page) => page.evaluate(() => document.activeElement?.id ?? '');

  it('plays a recording with the keyboard: progressively, by its timing, completely, as text', async () => {
    const { context, page } = await enrolAndSignIn(browser, s.admin, origin, 'ada');
    const open = page.getByRole('button', { name: `Recording of ${recorded}` });
    await open.focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: `Recording of ${recorded}` }).waitFor();

    // Every control has a name, as a screen reader finds it.
    const player = page.getByRole('group', { name: 'Player' });
    const toggle = player.getByRole('button', { name: 'Play', exact: true });
    const speed = player.getByRole('combobox', { name: 'Speed' });
    const position = player.getByRole('slider', { name: 'Position' });
    for (const control of [toggle, speed, position]) await control.waitFor();
    const tree = await player.ariaSnapshot();
    expect(tree).toContain('button "Play"');
    expect(tree).toContain('combobox "Speed"');
    expect(tree).toMatch(/slider "Position"/);
    expect(await position.getAttribute('aria-valuetext')).toBe('0:00 of 0:26');
    expect(await player.textContent()).toContain(
      'Idle gaps longer than 2 s play as 2 s (1 in this recording).',
    );
    const screen = page.locator('#playback');
    expect(await screen.textContent()).toBe('$ deploy web\n');

    // Every text the player shows, as it changes.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      const pre = document.getElementById('playback')!;
      new MutationObserver(() => seen.push(pre.textContent ?? '')).observe(pre, {
        childList: true,
        characterData: true,
        subtree: true,
      });
    });

    // Space plays (at 1×), Enter pauses: a part of the output, which stays as it is.
    await toggle.focus();
    await page.keyboard.press('Space');
    const pause = player.getByRole('button', { name: 'Pause', exact: true });
    await pause.waitFor();
    await expect.poll(() => screen.textContent(), { timeout: 5000 }).toContain('step 1 ok');
    await page.keyboard.press('Enter');
    await toggle.waitFor();
    const part = (await screen.textContent()) ?? '';
    expect(printed.startsWith(part) && part.length < printed.length).toBe(true);
    await page.waitForTimeout(300);
    expect(await screen.textContent()).toBe(part);

    // Tab reaches the speed; the arrow keys choose 8×; Shift+Tab goes back, Space plays on.
    await page.keyboard.press('Tab');
    expect(await focused(page)).toBe('player-speed');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    expect(await speed.inputValue()).toBe('8');
    await page.keyboard.press('Shift+Tab');
    expect(await focused(page)).toBe('player-toggle');
    await page.keyboard.press('Space');
    // 26 s of recording (the minute of silence played as 2 s) at 8×: about 3 s.
    await expect.poll(() => screen.textContent(), { timeout: 15_000 }).toBe(printed);
    await toggle.waitFor();
    expect(await player.getByText('0:26 of 0:26').count()).toBe(1);

    // It came progressively, each state a prefix of the next, and as text: no element inside.
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    const distinct = [...new Set(seen)];
    expect(distinct.length).toBeGreaterThan(5);
    for (let i = 1; i < distinct.length; i++) expect(distinct[i]!.startsWith(distinct[i - 1]!)).toBe(true);
    expect(distinct.at(-1)).toBe(printed);
    expect(await screen.locator('*').count()).toBe(0);
    expect(await page.title()).not.toBe('pwned');

    // The position slider: Tab reaches it, Home goes to the start, End to the end.
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await focused(page)).toBe('player-position');
    await page.keyboard.press('Home');
    await expect.poll(() => screen.textContent()).toBe('$ deploy web\n');
    expect(await position.getAttribute('aria-valuetext')).toBe('0:00 of 0:26');
    await page.keyboard.press('End');
    await expect.poll(() => screen.textContent()).toBe(printed);

    // The whole text is there too, as before.
    expect(await page.locator('#recording').textContent()).toBe(printed);
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/recording-player.png`, fullPage: true });
    await context.close();
  }, 90_000);

  it('offers in the ask form only the privileges the person may ask for, and says when there is none', async () => {
    // approver-2 may ask for deploy alone; olivia, an operator, for both.
    await s.admin.call('PUT', '/v1/policies', {
      policies: {
        ...SCENARIO_POLICIES,
        'approver-2-deploy': `permit(principal == Tether::Principal::"${s.approvers[2]!.caller.principal.id}", action == Tether::Action::"request", resource) when { resource.name == "deploy" };`,
      },
    });
    const offered = async (name: string) => {
      const { context, page } = await enrolAndSignIn(browser, s.admin, origin, name);
      const choice = page.getByLabel('Privilege', { exact: true });
      await choice.locator('option').first().waitFor({ state: 'attached' });
      const names = (await choice.locator('option').allTextContents()).sort();
      await context.close();
      return names;
    };
    expect(await offered('olivia')).toEqual(['deploy', 'firewall-admin']);
    expect(await offered('approver-2')).toEqual(['deploy']);

    // oscar is in no group any policy lets ask for anything.
    const oscar = await enrolAndSignIn(browser, s.admin, origin, 'oscar');
    const ask = oscar.page.getByRole('region', { name: 'Ask for a privilege' });
    await expect.poll(() => ask.textContent()).toContain('You are not eligible for any privilege.');
    expect(await oscar.page.getByLabel('Privilege', { exact: true }).count()).toBe(0);
    await oscar.context.close();
  }, 60_000);
});
