import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionReceipt } from '@tether-broker/protocol';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { run } from '../../packages/cli/src/program.js';
import { BoundSession, writeIdentity } from '../../packages/client/src/index.js';
import { type Actor, injectFetch, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * `tether session end --wait-enforced` and `tether session receipt`, run in this process
 * against a real broker: the CLI is given its I/O (its `fetch` goes to the app by inject, no
 * port is opened; its output is collected; its environment names a temporary home), so no
 * global is patched. The CLI keeps real time; the broker's clock is set to it and then held,
 * so PEPs stay live.
 */
describeEachStore('session receipts from the CLI', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  let home: string;
  let identityFile: string;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    b.clock.set(Date.now());
    s = await setUpScenario(b);
    pep = await b.principal('edge-pep', 'service', ['pep']);
    home = mkdtempSync(join(tmpdir(), 'tether-cli-receipts-'));
    identityFile = join(home, 'deploy-bot.json');
    writeIdentity(identityFile, s.pipeline.identity);
  });
  afterEach(async () => {
    rmSync(home, { recursive: true, force: true });
    await b.close();
  });

  /** Runs the CLI as deploy-bot; answers its exit code and what it printed. */
  async function tether(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await run(['node', 'tether', '--identity', identityFile, ...args], {
      stdout: { write: (chunk) => out.push(String(chunk)) },
      stderr: { write: (chunk) => err.push(String(chunk)) },
      fetch: injectFetch(b.app),
      env: { TETHER_HOME: home },
    });
    return { code, stdout: out.join(''), stderr: err.join('') };
  }

  async function liveSession(): Promise<string> {
    const request = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-3',
      justification: 'release',
      duration: 1800,
    });
    return (await BoundSession.activate(s.pipeline.client, request.id)).info.id;
  }

  const ack = (applied: number) => pep.client.call('POST', '/v1/peps/edge-pep/ack', { applied });
  const receipt = (id: string) => s.admin.call<SessionReceipt>('GET', `/v1/sessions/${id}/receipt`);

  it('fails with the pending PEPs named when the end is not enforced in time', async () => {
    await ack(0);
    const id = await liveSession();
    const result = await tether('session', 'end', id, '--wait-enforced', '--timeout', '0');
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`ended session ${id} (completed)`);
    expect(result.stdout).toContain('enforced:     not yet: waiting for edge-pep');
    expect(result.stderr).toContain(
      `error not_enforced: the end of session ${id} was not enforced within 0s; pending: edge-pep`,
    );
    expect((await receipt(id)).state).toBe('ended');

    // The receipt later, as JSON: exactly the API's answer.
    const json = await tether('--json', 'session', 'receipt', id);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(await receipt(id));
  });

  it('waits until every live PEP has applied the end, then prints the receipt', async () => {
    await ack(0);
    const id = await liveSession();
    const waiting = tether('session', 'end', id, '--wait-enforced', '--timeout', '30s');
    // The PEP applies the end only once it is in the log.
    await eventually(async () => (await receipt(id)).seq !== null);
    await ack(1);
    const result = await waiting;
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('enforced:     yes, by every live enforcement point');
    expect(result.stdout).toMatch(/edge-pep\s+yes\s+1\s+\S+ \S+Z \(\+\d+(ms|\.\ds)\)/);

    const human = await tether('session', 'receipt', id);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`session:      ${id}`);
    expect(human.stdout).toContain('log position: 1');
  });

  it('prints the receipt as JSON with --json --wait-enforced', async () => {
    const id = await liveSession();
    // No PEP has ever reported: nothing to wait for.
    const result = await tether('--json', 'session', 'end', id, '--wait-enforced');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      session: id,
      state: 'ended',
      seq: 1,
      enforced: true,
      peps: [],
      pending: [],
    });
  });
});
