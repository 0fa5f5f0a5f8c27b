import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JSONWebKeySet } from 'jose';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { type SsfDeliveryWorker, startSsfDelivery } from '../../packages/broker/src/ssf-streams/worker.js';
import { run } from '../../packages/cli/src/program.js';
import { BoundSession, writeIdentity } from '../../packages/client/src/index.js';
import { injectFetch, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { SetReceiver, verifySet } from '../support/ssf-receiver.js';
import { describeEachStore } from '../support/stores.js';

const SESSION_REVOKED = 'https://schemas.openid.net/secevent/caep/event-type/session-revoked';
const VERIFICATION = 'https://schemas.openid.net/secevent/ssf/event-type/verification';

/**
 * `tether ssf streams …` run in this process as the tenant's admin, against a real broker (the
 * CLI's calls reach the app by inject) whose push delivery worker runs as `tether server` runs
 * it, sending to a real receiver on loopback.
 */
describeEachStore('tether ssf streams', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let endpoint: SetReceiver;
  let worker: SsfDeliveryWorker;
  let home: string;
  let identityFile: string;
  const realFetch = globalThis.fetch;
  /** The CLI's fetch: the broker's calls reach the app by inject, the rest goes out for real. */
  let cliFetch: typeof fetch;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), {
      // The loopback receiver is on the operator's allow-list, over http.
      config: { outboundAllowHosts: ['127.0.0.1'], outboundAllowHttp: true },
    });
    // The CLI signs its proofs with real time: hold the broker's clock at it.
    b.clock.set(Date.now());
    s = await setUpScenario(b);
    endpoint = await SetReceiver.start();
    home = mkdtempSync(join(tmpdir(), 'tether-cli-ssf-'));
    identityFile = join(home, 'admin.json');
    writeIdentity(identityFile, b.adminIdentity);
    const toBroker = injectFetch(b.app);
    cliFetch = ((input: string | URL | Request, init?: RequestInit) =>
      String(input instanceof Request ? input.url : input).startsWith(PUBLIC_URL)
        ? toBroker(input, init)
        : realFetch(input, init)) as typeof fetch;
    worker = startSsfDelivery(b.ctx);
  });
  afterEach(async () => {
    await worker.stop();
    await endpoint.down();
    rmSync(home, { recursive: true, force: true });
    await b.close();
  });

  async function tether(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await run(['node', 'tether', '--identity', identityFile, ...args], {
      stdout: { write: (chunk) => out.push(String(chunk)) },
      stderr: { write: (chunk) => err.push(String(chunk)) },
      fetch: cliFetch,
    });
    return { code, stdout: out.join(''), stderr: err.join('') };
  }

  it('creates, lists, shows, verifies, pauses and deletes streams; the worker pushes what they carry', async () => {
    const headerFile = join(home, 'authorization');
    writeFileSync(headerFile, 'Bearer from-a-file-91ab\n', { mode: 0o600 });
    const created = await tether(
      '--json',
      'ssf',
      'streams',
      'create',
      '--push',
      endpoint.url,
      '--authorization-file',
      headerFile,
      '--event',
      'session-revoked',
      '--aud',
      'https://saas.example',
    );
    expect(created.code).toBe(0);
    const stream = JSON.parse(created.stdout) as {
      stream_id: string;
      events_delivered: string[];
      aud: string;
    };
    expect(stream.events_delivered).toEqual([SESSION_REVOKED]);
    expect(stream.aud).toBe('https://saas.example');
    expect(created.stdout).not.toContain('from-a-file');

    const poll = await tether('ssf', 'streams', 'create', '--poll', '--description', 'for the SIEM');
    expect(poll.code).toBe(0);
    expect(poll.stdout).toMatch(/delivery:\s+poll http:\/\/broker\.test\/v1\/ssf\/poll\/stm_/);
    expect(poll.stdout).toMatch(/events:\s+session-revoked, token-claims-change/);

    const listed = await tether('ssf', 'streams');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^ID\s+STATUS\s+DELIVERY\s+ENDPOINT\s+EVENTS\s+AUD/);
    expect(listed.stdout).toContain(`${stream.stream_id}  enabled  push      ${endpoint.url}`);

    // The broker's worker pushes the verification SET on its own, with the header from the file.
    expect((await tether('ssf', 'streams', 'verify', stream.stream_id, '--state', 'cli-1')).stdout).toContain(
      `verification requested on stream ${stream.stream_id}`,
    );
    await eventually(() => endpoint.accepted.length === 1, 10_000);
    expect(endpoint.accepted[0]?.authorization).toBe('Bearer from-a-file-91ab');
    expect(endpoint.accepted[0]?.claims.events).toEqual({ [VERIFICATION]: { state: 'cli-1' } });

    // And a session's end, as soon as it commits.
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-7',
      justification: 'rotate rules',
      duration: 1800,
    });
    await s.approvers[0]?.client.call('POST', `/v1/requests/${req.id}/approve`);
    const sid = (await BoundSession.activate(s.operator.client, req.id)).info.id;
    await s.admin.call('POST', `/v1/sessions/${sid}/end`, {});
    await eventually(() => endpoint.accepted.length === 2, 10_000);
    const jwks = (await b.app.inject({ url: '/.well-known/jwks.json' })).json() as JSONWebKeySet;
    const claims = await verifySet(endpoint.accepted[1]?.jws ?? '', jwks, {
      issuer: PUBLIC_URL,
      audience: 'https://saas.example',
    });
    expect((claims.sub_id as { session: { id: string } }).session.id).toBe(sid);

    expect(
      (await tether('ssf', 'streams', 'pause', stream.stream_id, '--reason', 'maintenance')).stdout,
    ).toBe(`stream ${stream.stream_id} is paused\n`);
    expect((await tether('ssf', 'streams', 'show', stream.stream_id)).stdout).toMatch(
      /status:\s+paused \(maintenance\)/,
    );
    expect((await tether('ssf', 'streams', 'delete', stream.stream_id)).stdout).toBe(
      `deleted stream ${stream.stream_id}\n`,
    );
    const after = JSON.parse((await tether('--json', 'ssf', 'streams', 'list')).stdout) as {
      stream_id: string;
    }[];
    expect(after.map((x) => x.stream_id)).not.toContain(stream.stream_id);
    expect(after).toHaveLength(1);
  });

  it('refuses unusable flags before calling, and reports the broker refusing a stream', async () => {
    for (const args of [
      ['create'],
      ['create', '--push', endpoint.url, '--poll'],
      ['create', '--poll', '--authorization-file', join(home, 'missing')],
      ['create', '--push', endpoint.url, '--authorization-file', join(home, 'missing')],
      ['create', '--poll', '--event', 'session-ended'],
    ]) {
      const result = await tether('ssf', 'streams', ...args);
      expect(result.code, args.join(' ')).toBe(2);
    }
    const refused = await tether('ssf', 'streams', 'create', '--push', 'http://saas.example/events');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('destination_refused');
    expect(JSON.parse((await tether('--json', 'ssf', 'streams', 'list')).stdout)).toEqual([]);
  });
});
