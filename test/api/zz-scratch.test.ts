import { it } from 'vitest';
import { startTestBroker } from '../support/broker.js';
import { describeEachStore } from '../support/stores.js';
describeEachStore('scratch', (fixture) => {
  it('explores', async () => {
    const b = await startTestBroker(await fixture.open());
    const token = await b.client(b.adminIdentity).accessToken();
    for (const url of ['/v1/policies/versions/1e309', '/v1/policies/versions/Infinity', '/v1/policies/versions/2147483648', '/v1/audit?after=1e309', '/v1/audit?after=99999999999999999999999', '/v1/audit?limit=1e309', '/v1/requests?limit=1e309']) {
      b.logs.length = 0;
      const r = await b.app.inject({ url, headers: { authorization: `Bearer ${token}` } });
      console.log(fixture.dialect, url, r.statusCode, r.body.slice(0, 150));
      if (r.statusCode >= 500) console.log(b.logs.filter((l) => l.includes('"level":50')).map((l) => l.slice(0, 600)));
    }
  });
});
