import { it, expect } from 'vitest';
import { startTestBroker } from '/work/main/test/support/broker.js';
import { openSse } from '/work/main/test/support/sse.js';
import { openStore, migrateToLatest } from '/work/main/packages/broker/src/store/database.js';

it('dbg', async () => {
  const store = openStore({ location: ':memory:' });
  await migrateToLatest(store);
  const b = await startTestBroker(store, { config: { heartbeatIntervalMs: 50 } });
  const pep = await b.principal('edge-pep', 'service', ['pep']);
  const base = await b.app.listen({ port: 0, host: '127.0.0.1' });
  const stream = await openSse(`${base}/v1/events`, { authorization: `Bearer ${await pep.client.bearerToken()}` });
  await stream.nextOf('heartbeat');
  stream.close();
  while (b.ctx.revocations.listenerCount(b.tenant.id) > 0) await new Promise((r) => setTimeout(r, 5));
  console.log('listener gone');
  const conns = await new Promise((r) => b.app.server.getConnections((e, n) => r(n)));
  console.log('connections', conns);
  const t = Date.now();
  await Promise.race([b.app.close(), new Promise((r) => setTimeout(r, 3000))]);
  console.log('closed after', Date.now() - t);
  const conns2 = await new Promise((r) => b.app.server.getConnections((e, n) => r(n)));
  console.log('connections', conns2);
});
