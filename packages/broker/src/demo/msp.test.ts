import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { injectFetch, startTestBroker, type TestBroker } from '../../../../test/support/broker.js';
import { describeEachStore } from '../../../../test/support/stores.js';
import { BrokerClient } from '../../../client/src/index.js';
import { DEMO_TENANT, seedDemo } from './seed.js';

/** `tether server --demo`'s MSP part: a provider, two customers, one accepted relationship. */
describeEachStore('demo seed: the MSP demo', (fixture) => {
  let b: TestBroker;
  afterAll(() => fixture.cleanup());
  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
  });
  afterEach(() => b.close());

  it('seeds the provider msp, customers acme-corp and globex, and one active relationship', async () => {
    const seed = await seedDemo(b.ctx, {});
    expect(seed.tenant.name).toBe(DEMO_TENANT);
    expect(seed.tenant.kind).toBe('standalone');
    expect(seed.msp.provider).toMatchObject({ name: 'msp', kind: 'provider' });
    expect(seed.msp.customers.map((c) => [c.name, c.kind, c.providerTenantId])).toEqual([
      ['acme-corp', 'customer', seed.msp.provider.id],
      ['globex', 'customer', seed.msp.provider.id],
    ]);
    expect(seed.msp.relationship).toMatchObject({
      name: 'managed-servers',
      customer: 'acme-corp',
      state: 'active',
    });
    expect(seed.msp.identities.map((i) => [i.name, i.tenant.name])).toEqual([
      ['msp-admin', 'msp'],
      ['morgan', 'msp'],
      ['acme-admin', 'acme-corp'],
      ['acme-approver', 'acme-corp'],
      ['globex-admin', 'globex'],
      ['globex-approver', 'globex'],
    ]);
    // The operator may ask in acme-corp (and only there), for its privilege, with their own identity.
    const morgan = seed.msp.identities.find((i) => i.name === 'morgan')!;
    const client = new BrokerClient({
      identity: {
        broker: b.ctx.config.publicUrl,
        tenant: morgan.tenant.id,
        principal: morgan.principal.id,
        key: morgan.key as Record<string, unknown>,
      },
      fetch: injectFetch(b.app),
      now: () => b.clock.now(),
    });
    const seats = await client.call<{ customers: { name: string; privileges: { name: string }[] }[] }>(
      'GET',
      '/v1/seats',
    );
    expect(seats.customers.map((c) => [c.name, c.privileges.map((p) => p.name)])).toEqual([
      ['acme-corp', ['server-maintenance']],
    ]);
  });

  it('keeps the MSP demo and its keys on the next start, and replaces a key no longer on disk', async () => {
    const first = await seedDemo(b.ctx, {});
    const keys = Object.fromEntries(first.msp.identities.map((i) => [i.name, i.key]));
    const again = await seedDemo(b.ctx, keys);
    expect(again.msp.provider.id).toBe(first.msp.provider.id);
    expect(again.msp.identities.map((i) => i.key.kid)).toEqual(first.msp.identities.map((i) => i.key.kid));
    // A key no longer on disk gets a new one registered.
    const { morgan: _lost, ...rest } = keys;
    const third = await seedDemo(b.ctx, rest);
    expect(third.msp.identities.find((i) => i.name === 'morgan')?.key.kid).not.toBe(keys.morgan?.kid);
    expect(third.msp.relationship?.state).toBe('active');
  });
});
