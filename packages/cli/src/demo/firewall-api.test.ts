import { afterAll, describe, expect, it } from 'vitest';
import { createFirewallApi } from './firewall-api.js';

describe('the demo firewall admin API', () => {
  const app = createFirewallApi();
  afterAll(() => app.close());
  const as = { 'x-tether-principal': 'prn_1', 'x-tether-ticket': 'NET%201' };

  it('adds, lists and removes rules per edge, and says who the gateway named', async () => {
    const added = await app.inject({
      method: 'POST',
      url: '/rules/edge-1',
      headers: as,
      payload: { action: 'allow', source: '10.0.0.0/8', port: 443 },
    });
    expect(added.statusCode).toBe(201);
    const { rule, tether, credentials } = added.json();
    expect(rule).toMatchObject({ action: 'allow', source: '10.0.0.0/8', port: 443, added_by: 'prn_1' });
    expect(tether).toEqual({ principal: 'prn_1', session: null, ticket: 'NET 1', privilege: null });
    expect(credentials).toEqual({ authorization: false, dpop: false });

    await app.inject({
      method: 'POST',
      url: '/rules/edge-1',
      payload: { action: 'deny', source: '0.0.0.0/0' },
    });
    expect((await app.inject({ url: '/rules/edge-1' })).json().rules).toHaveLength(2);
    expect((await app.inject({ url: '/rules/edge-2' })).json().rules).toEqual([]);

    const removed = await app.inject({ method: 'DELETE', url: `/rules/edge-1/${rule.id}` });
    expect(removed.json().removed).toMatchObject({ id: rule.id });
    expect((await app.inject({ method: 'DELETE', url: `/rules/edge-1/${rule.id}` })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: '/rules/edge-1' })).json()).toMatchObject({
      removed: 1,
    });
    expect((await app.inject({ url: '/rules/edge-1' })).json().rules).toEqual([]);
  });

  it('reports a credential that reached it, and refuses malformed rules', async () => {
    const leaked = await app.inject({
      url: '/rules/edge-1',
      headers: { authorization: 'DPoP x', dpop: 'y' },
    });
    expect(leaked.json().credentials).toEqual({ authorization: true, dpop: true });
    for (const payload of [
      { action: 'maybe', source: '1.2.3.4' },
      { action: 'allow' },
      { action: 'allow', source: 'x y' },
    ])
      expect((await app.inject({ method: 'POST', url: '/rules/edge-1', payload })).statusCode).toBe(400);
    expect((await app.inject({ url: '/rules/a%20b' })).statusCode).toBe(400);
  });
});
