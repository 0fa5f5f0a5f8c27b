import type { SessionReceipt } from '@tether-broker/protocol';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { BoundSession } from '../../packages/client/src/index.js';
import { createEnforcer, type Enforcer } from '../../packages/pep/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * A fetch that can freeze: while frozen, calls never answer (until their own timeout aborts
 * them), as from a process that has hung. The enforcer's acks go through it.
 */
function freezableFetch(): { fetch: typeof fetch; freeze(): void; thaw(): void } {
  let frozen = false;
  return {
    fetch: ((input: string | URL | Request, init?: RequestInit) => {
      if (!frozen) return fetch(input, init);
      return new Promise<Response>((_, reject) => {
        const signal = init?.signal;
        signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    }) as typeof fetch,
    freeze: () => {
      frozen = true;
    },
    thaw: () => {
      frozen = false;
    },
  };
}

/**
 * Attack (issue 9, item 10): two replicas shared one PEP identity; one froze (stopped applying
 * the log and acking) and the receipt still said "enforced", because acks were kept per
 * principal and the live replica's covered the frozen one's. Now every PEP process acks with
 * its own instance id, and a receipt waits for every live instance.
 */
describeEachStore('frozen PEP replica', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  let brokerUrl: string;
  let replicas: Enforcer[];
  let link0: ReturnType<typeof freezableFetch>;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), { config: { heartbeatIntervalMs: 50 } });
    s = await setUpScenario(b);
    pep = await b.principal('shared-pep', 'service', ['pep']);
    brokerUrl = await b.app.listen({ port: 0, host: '127.0.0.1' });
    link0 = freezableFetch();
    const replica = (fetchImpl?: typeof fetch) =>
      createEnforcer({
        ...(fetchImpl ? { fetch: fetchImpl } : {}),
        broker: brokerUrl,
        issuer: PUBLIC_URL,
        audience: 'https://deploy.example',
        tenant: b.tenant.id,
        publicBaseUrl: 'https://deploy.example',
        // One identity, two processes.
        identity: { principal: pep.identity.principal, key: pep.identity.key },
        now: () => b.clock.now(),
        reconnect: { minDelayMs: 20, maxDelayMs: 100 },
        decisions: false,
      });
    replicas = [replica(link0.fetch), replica()];
    for (const r of replicas) r.start();
    await eventually(() => replicas.every((r) => r.state().fresh));
    // Both have acked (a liveness ack follows the first heartbeat).
    await eventually(async () => (await instances()).length === 2, 5000, 'two instances');
  });
  afterEach(async () => {
    link0.thaw();
    for (const r of replicas) await r.close();
    await b.close();
  });

  const instances = () =>
    b.ctx.store.db
      .selectFrom('pep_instances')
      .selectAll()
      .where('principal_id', '=', pep.caller.principal.id)
      .execute();
  const receipt = (id: string) => s.admin.call<SessionReceipt>('GET', `/v1/sessions/${id}/receipt`);

  async function endedSession(): Promise<BoundSession> {
    const request = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-1',
      justification: 'release',
      duration: 1800,
    });
    const session = await BoundSession.activate(s.pipeline.client, request.id);
    await session.end();
    return session;
  }

  it('keeps the end pending while one replica is frozen, until it leaves the liveness window', async () => {
    // Replica 0 freezes: it no longer acks (nor says it is leaving).
    link0.freeze();
    const session = await endedSession();
    const seq = (await receipt(session.info.id)).seq!;
    // The live replica applies and acks the end...
    await eventually(() => replicas[1]!.state().position >= seq);
    await eventually(
      async () => (await instances()).some((i) => Number(i.last_applied_seq) >= seq),
      5000,
      'the live replica acked',
    );
    // ...but the frozen one, still within the window, has not: not enforced.
    const pending = await receipt(session.info.id);
    expect(pending).toMatchObject({ enforced: false, pending: ['shared-pep'] });
    const entry = pending.peps.find((p) => p.name === 'shared-pep')!;
    expect(entry.instances).toHaveLength(2);
    expect(entry.instances.filter((i) => i.applied >= seq)).toHaveLength(1);
    expect(entry.instances.filter((i) => i.enforced_at === null)).toHaveLength(1);
    expect(entry).toMatchObject({ live: true, enforced_at: null });
    expect(entry.applied).toBeLessThan(seq);

    // Past the liveness window (30 s) the frozen replica denies everything by its own staleness
    // budget; the live one keeps acking, so the end is now enforced.
    b.clock.advance(31_000);
    await eventually(
      async () => (await instances()).some((i) => Number(i.last_seen_at) === b.clock.now()),
      5000,
      'a liveness ack on the new clock',
    );
    const enforced = await receipt(session.info.id);
    expect(enforced).toMatchObject({ enforced: true, pending: [] });
    const after = enforced.peps.find((p) => p.name === 'shared-pep')!;
    expect(after.instances).toHaveLength(1);
    expect(after.applied).toBeGreaterThanOrEqual(seq);
  });

  it('is enforced once the frozen replica thaws and acks', { timeout: 30_000 }, async () => {
    link0.freeze();
    const session = await endedSession();
    const seq = (await receipt(session.info.id)).seq!;
    await eventually(
      async () => (await instances()).some((i) => Number(i.last_applied_seq) >= seq),
      5000,
      'the live replica acked',
    );
    const stuck = (await instances()).filter((i) => Number(i.last_applied_seq) < seq);
    expect(stuck).toHaveLength(1);
    expect((await receipt(session.info.id)).enforced).toBe(false);

    // The frozen process comes back and acks at its next liveness interval (5 s on its clock).
    link0.thaw();
    b.clock.advance(5000);
    await eventually(async () => (await receipt(session.info.id)).enforced, 15_000, 'enforced');
    expect((await instances()).map((i) => i.instance_id).sort()).toContain(stuck[0]!.instance_id);
    const r = await receipt(session.info.id);
    expect(r.pending).toEqual([]);
    expect(r.peps.find((p) => p.name === 'shared-pep')?.instances.every((i) => i.applied >= seq)).toBe(true);
  });
});

describeEachStore('PEP replica leaving cleanly', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  afterAll(() => fixture.cleanup());
  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), { config: { heartbeatIntervalMs: 50 } });
    s = await setUpScenario(b);
  });
  afterEach(() => b.close());

  it('a replica that closes says so, and receipts stop waiting for it at once', async () => {
    const pep = await b.principal('shared-pep', 'service', ['pep']);
    const brokerUrl = await b.app.listen({ port: 0, host: '127.0.0.1' });
    const replica = () =>
      createEnforcer({
        broker: brokerUrl,
        issuer: PUBLIC_URL,
        audience: 'https://deploy.example',
        tenant: b.tenant.id,
        publicBaseUrl: 'https://deploy.example',
        identity: { principal: pep.identity.principal, key: pep.identity.key },
        now: () => b.clock.now(),
        reconnect: { minDelayMs: 20, maxDelayMs: 100 },
        decisions: false,
      });
    const [leaving, staying] = [replica(), replica()];
    leaving.start();
    staying.start();
    const rows = () => b.ctx.store.db.selectFrom('pep_instances').select('instance_id').execute();
    try {
      await eventually(async () => (await rows()).length === 2, 5000, 'two instances');
      await leaving.close();
      expect(await rows()).toHaveLength(1);
      const request = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
        privilege: 'deploy',
        ticket: 'CHG-1',
        justification: 'release',
        duration: 1800,
      });
      const session = await BoundSession.activate(s.pipeline.client, request.id);
      await session.end();
      // No clock moves: only the staying replica's ack is waited for.
      await eventually(
        async () =>
          (await s.admin.call<SessionReceipt>('GET', `/v1/sessions/${session.info.id}/receipt`)).enforced,
        5000,
        'enforced',
      );
    } finally {
      await leaving.close();
      await staying.close();
    }
  });
});
