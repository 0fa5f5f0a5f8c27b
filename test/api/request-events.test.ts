import type { RequestView } from '@tether-broker/protocol/api';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BrokerClient, BrokerError } from '../../packages/client/src/index.js';
import { SseDecoder } from '../../packages/pep/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { freePort } from '../support/processes.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * `GET /v1/requests/:id/events` (issue 13 item 4): a waiting requester is pushed each change of
 * its request, the decision included, and the stream ends with it. Over a real loopback port:
 * the stream is read as it arrives.
 */
describeEachStore('request events (push, not polling)', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let url: string;

  beforeAll(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    b = await startTestBroker(await fixture.open(), { config: { publicUrl: url } });
    b.clock.advance(Date.now() - b.clock.now());
    await b.app.listen({ port, host: '127.0.0.1' });
    s = await setUpScenario(b, { approvals: 2 });
  });
  afterAll(async () => {
    await b?.app.close();
    await fixture.cleanup();
  });

  /** The requester's client over the real port (global fetch). */
  const over = (client: BrokerClient) =>
    new BrokerClient({ identity: client.identity, now: () => b.clock.now() });

  /** Reads `request` events from a stream until it ends, timing each. */
  async function eventsOf(response: Response, onEach: (r: RequestView) => Promise<void>) {
    const decoder = new SseDecoder();
    const text = new TextDecoder();
    const reader = response.body!.getReader();
    const seen: { state: string; approvals: number; at: number }[] = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return seen;
      for (const m of decoder.push(text.decode(value, { stream: true }))) {
        if (m.event !== 'request') continue;
        const r = JSON.parse(m.data) as RequestView;
        seen.push({
          state: r.state,
          approvals: (r.reviews ?? []).filter((v) => v.decision === 'approve').length,
          at: performance.now(),
        });
        await onEach(r);
      }
    }
  }

  it('pushes the request as it is, each approval, then the decision, and ends', async () => {
    const olivia = over(s.operator.client);
    const created = await olivia.call<RequestView>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-31',
      justification: 'push test',
      duration: 600,
    });
    const response = await olivia.stream(`/v1/requests/${created.id}/events`);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const approvedAt: number[] = [];
    let step = 0;
    const seen = await eventsOf(response, async (r) => {
      // After each event while it is pending, the next approver acts: the stream must carry it.
      const approver = r.state === 'pending' ? s.approvers[step++] : undefined;
      if (approver) {
        approvedAt.push(performance.now());
        await approver.client.call('POST', `/v1/requests/${created.id}/approve`, {});
      }
    });
    expect(seen.map((e) => [e.state, e.approvals])).toEqual([
      ['pending', 0],
      ['pending', 1],
      ['approved', 2],
    ]);
    // Each change arrives within a second of being made (the broker reads every 250 ms).
    const delays = seen.slice(1).map((e, i) => e.at - (approvedAt[i] ?? 0));
    for (const d of delays) expect(d).toBeLessThan(1000);
    console.info(`request events: change → pushed in ${delays.map((d) => d.toFixed(0)).join(', ')} ms`);
  });

  it("refuses another principal's or tenant's request, an unknown one, and an unauthenticated caller", async () => {
    const olivia = over(s.operator.client);
    const other = await startTestBroker(b.ctx.store, { reuse: b, tenantName: 'globex' });
    const foreign = await setUpScenario(other);
    const { id } = await foreign.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-32',
      justification: 'not yours',
      duration: 600,
    });
    await expect(olivia.stream(`/v1/requests/${id}/events`)).rejects.toMatchObject({ status: 404 });
    await expect(olivia.stream('/v1/requests/req_00000000000000000000000000/events')).rejects.toBeInstanceOf(
      BrokerError,
    );
    const bare = await fetch(`${url}/v1/requests/${id}/events`);
    expect(bare.status).toBe(401);
  });
});
