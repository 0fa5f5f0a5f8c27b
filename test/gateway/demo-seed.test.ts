import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { DEMO_TENANT, seedDemo } from '../../packages/broker/src/demo/seed.js';
import { bootstrapTenant } from '../../packages/broker/src/records/bootstrap.js';
import { createPrincipal } from '../../packages/broker/src/records/principals.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { describeEachStore } from '../support/stores.js';

/** The demo's enforcement point, `edge-gateway`: seeded with the tenant, and added to a tenant seeded before it existed. */
describeEachStore('demo seed: the gateway principal', (fixture) => {
  let b: TestBroker;
  afterAll(() => fixture.cleanup());
  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
  });
  afterEach(() => b.close());

  it('seeds edge-gateway with the pep role and a key, and keeps the key on the next start', async () => {
    const first = await seedDemo(b.ctx, {});
    const gateway = first.identities.find((i) => i.name === 'edge-gateway');
    expect(gateway?.principal).toMatchObject({ kind: 'service', roles: ['pep'], enabled: true });
    expect(gateway?.key.d).toEqual(expect.any(String));
    const again = await seedDemo(b.ctx, { 'edge-gateway': gateway!.key });
    expect(again.created).toBe(false);
    expect(again.identities.find((i) => i.name === 'edge-gateway')?.key.kid).toBe(gateway!.key.kid);
  });

  it('adds edge-gateway to a demo tenant seeded before the gateway existed', async () => {
    const boot = await bootstrapTenant(b.ctx.store, b.clock, { tenantName: DEMO_TENANT, adminName: 'admin' });
    const admin = { principal: boot.admin, tenant: boot.tenant };
    for (const [name, kind] of [
      ['olivia', 'human'],
      ['avery', 'human'],
      ['deploy-pipeline', 'pipeline'],
    ] as const)
      await createPrincipal(b.ctx, admin, { name, kind });
    const seeded = await seedDemo(b.ctx, {});
    expect(seeded.created).toBe(false);
    expect(seeded.identities.map((i) => i.name)).toContain('edge-gateway');
    expect(seeded.identities.find((i) => i.name === 'edge-gateway')?.principal).toMatchObject({
      tenantId: boot.tenant.id,
      roles: ['pep'],
    });
  });
});
