import { Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { configFromEnvironment, resolveConfig } from '../../packages/broker/src/config/config.js';
import { OutboundClient, Unreachable } from '../../packages/broker/src/net/outbound.js';
import { FORBIDDEN, hugeBody, serve, settings } from '../support/outbound-targets.js';

/**
 * Issue 9 item 4, the broker's one outbound client on its own, from the attacker's side: every
 * URL an admin or a receiver may choose is aimed at loopback, private networks, cloud metadata,
 * a rebinding name, a redirect, a huge answer, a server that never answers. The broker-level
 * attacks (trust records, transmitters, SSF streams, token exchange floods) are in
 * ssrf-outbound.test.ts.
 */

describe('the outbound client refuses private destinations before any connection', () => {
  afterEach(() => vi.restoreAllMocks());

  it('refuses every loopback, private, link-local, metadata and clear-text URL, without a connection', async () => {
    const connect = vi.spyOn(Socket.prototype, 'connect');
    const client = new OutboundClient(settings());
    for (const url of FORBIDDEN) {
      expect(client.refusalOf(url), url).toBeDefined();
      const err = await client.request(url).catch((e: unknown) => e);
      expect(err, url).toBeInstanceOf(Unreachable);
      expect((err as Error).message).toBe('unreachable');
      expect((err as Unreachable).reason).toMatch(/^destination refused/);
    }
    expect(connect).not.toHaveBeenCalled();
    // A public https URL passes the static check (nothing is fetched here).
    expect(client.refusalOf('https://token.actions.githubusercontent.com/.well-known/jwks')).toBeUndefined();
  });

  it('refuses a name that resolves to loopback, or to loopback among public addresses', async () => {
    const connect = vi.spyOn(Socket.prototype, 'connect');
    for (const answer of [
      [{ address: '127.0.0.1', family: 4 }],
      [{ address: '::1', family: 6 }],
      [{ address: '169.254.169.254', family: 4 }],
      [
        { address: '93.184.216.34', family: 4 },
        { address: '10.1.2.3', family: 4 },
      ],
    ]) {
      const resolver = vi.fn(async () => answer);
      const client = new OutboundClient(settings(), { resolver });
      const err = await client.request('https://jwks.attacker.example/keys').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Unreachable);
      expect((err as Unreachable).reason).toBe('name resolves to a non-public address');
      expect(resolver).toHaveBeenCalledTimes(1);
    }
    expect(connect).not.toHaveBeenCalled();
  });

  it('connects to the address it checked, with the name as Host: a second resolution cannot rebind it', async () => {
    const hosts: (string | undefined)[] = [];
    const target = await serve((req, res) => {
      hosts.push(req.headers.host);
      res.writeHead(200).end('{"keys":[]}');
    });
    // The first answer is checked and used; a rebinding resolver would answer differently next time.
    const answers = [[{ address: '127.0.0.1', family: 4 }], [{ address: '10.9.9.9', family: 4 }]];
    const resolver = vi.fn(async () => answers.shift() ?? []);
    const client = new OutboundClient(settings({ allowHosts: ['jwks.internal.test'], allowHttp: true }), {
      resolver,
    });
    const answer = await client.request(`http://jwks.internal.test:${target.port}/jwks`);
    expect(answer.status).toBe(200);
    expect(resolver).toHaveBeenCalledTimes(1);
    expect(hosts).toEqual([`jwks.internal.test:${target.port}`]);
    await target.close();
  });

  it('does not follow a redirect to loopback', async () => {
    const inner = await serve((_req, res) => res.writeHead(200).end('{"keys":[]}'));
    const outer = await serve((_req, res) => res.writeHead(302, { location: inner.url() }).end());
    const client = new OutboundClient(settings({ allowHosts: ['127.0.0.1'], allowHttp: true }));
    expect((await client.request(outer.url())).status).toBe(302);
    expect(inner.hits()).toBe(0);
    await Promise.all([inner.close(), outer.close()]);
  });

  it('cuts a 2 MB answer off at the cap, declared or streamed, and a 64 MB one long before its end', async () => {
    const client = new OutboundClient(settings({ allowHosts: ['127.0.0.1'], allowHttp: true }));
    for (const [total, declare] of [
      [2 * 1024 * 1024, true],
      [2 * 1024 * 1024, false],
      [64 * 1024 * 1024, false],
    ] as const) {
      const body = hugeBody(total, declare);
      const server = await serve(body.handler);
      const err = await client.request(server.url()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Unreachable);
      expect((err as Unreachable).reason).toBe('answer too large');
      await vi.waitFor(() => expect(body.seen.closed).toBe(true));
      // 2 MB fit in the kernel's socket buffers; 64 MB cannot: the connection was cut, not drained.
      if (total > 2 * 1024 * 1024) {
        expect(body.seen.finished).toBe(false);
        expect(body.seen.written).toBeLessThan(total / 4);
      }
      await server.close();
    }
  });

  it('gives up after its time cap', async () => {
    const hung = await serve(() => undefined);
    const client = new OutboundClient(settings({ allowHosts: ['127.0.0.1'], allowHttp: true }));
    const err = await client.request(hung.url(), { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unreachable);
    expect((err as Unreachable).reason).toBe('timed out');
    await hung.close();
  });
});

describe('the operator allow-list', () => {
  it('is read from the environment, comma-separated, and refuses what is not a host', () => {
    const config = resolveConfig(
      configFromEnvironment({
        TETHER_OUTBOUND_ALLOW_HOSTS: 'idp.corp.example, 10.0.0.5',
        TETHER_OUTBOUND_ALLOW_HTTP: '1',
        TETHER_OUTBOUND_TIMEOUT_MS: '3000',
      }),
    );
    expect(config).toMatchObject({
      outboundAllowHosts: ['idp.corp.example', '10.0.0.5'],
      outboundAllowHttp: true,
      outboundTimeoutMs: 3000,
    });
    expect(resolveConfig({})).toMatchObject({ outboundAllowHosts: [], outboundAllowHttp: false });
    expect(() => resolveConfig({ outboundAllowHosts: ['http://10.0.0.5/'] })).toThrow(/outboundAllowHosts/);
    // Allowing a host opens that host only, and http only together with the allow-list.
    const client = new OutboundClient(settings({ allowHosts: config.outboundAllowHosts, allowHttp: true }));
    expect(client.refusalOf('http://10.0.0.5/jwks')).toBeUndefined();
    expect(client.refusalOf('http://10.0.0.6/jwks')).toBeDefined();
    expect(client.refusalOf('http://public.example/jwks')).toBeDefined();
  });
});
