import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { GATEWAY_DEFAULTS, GatewayConfigError, validateGatewayConfig } from './config.js';
import {
  cappedBody,
  declaredBodyTooLarge,
  forwardedFor,
  forwardingHeaders,
  isSpoofableHeader,
  withoutQueries,
  withoutQuery,
} from './hardening.js';

const minimal = {
  listen: { host: '127.0.0.1', port: 8701 },
  public_url: 'https://gw.example:8443',
  upstream: 'http://127.0.0.1:9801',
  routes: [{ method: 'GET', path: '/x', action: 'a:read', resource: 'r' }],
};

function problems(extra: Record<string, unknown>): string[] {
  try {
    validateGatewayConfig({ ...minimal, ...extra }, '/tmp');
  } catch (err) {
    if (err instanceof GatewayConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('gateway request limits in the configuration', () => {
  it('has safe defaults', () => {
    expect(validateGatewayConfig(minimal, '/tmp').limits).toEqual({
      headerTimeoutMs: GATEWAY_DEFAULTS.headerTimeoutMs,
      requestTimeoutMs: GATEWAY_DEFAULTS.requestTimeoutMs,
      maxBodyBytes: GATEWAY_DEFAULTS.maxBodyBytes,
    });
    expect(GATEWAY_DEFAULTS.headerTimeoutMs).toBeLessThanOrEqual(10_000);
    expect(GATEWAY_DEFAULTS.requestTimeoutMs).toBeLessThanOrEqual(60_000);
  });

  it('reads sizes in b, kb, mb and gb, or bytes', () => {
    const size = (v: unknown) =>
      validateGatewayConfig({ ...minimal, max_body_size: v }, '/tmp').limits.maxBodyBytes;
    expect(size('512kb')).toBe(512 * 1024);
    expect(size('2MB')).toBe(2 * 1024 * 1024);
    expect(size(1000)).toBe(1000);
    expect(size('0b')).toBe(0);
  });

  it.each([
    [{ max_body_size: 'lots' }, 'max_body_size: must be a size'],
    [{ max_body_size: -1 }, 'max_body_size: must be from 0'],
    [{ max_body_size: '17gb' }, 'max_body_size: must be from 0'],
    [{ header_timeout: '0ms' }, 'header_timeout: must be from 100 ms'],
    [{ request_timeout: 'forever' }, 'request_timeout: must be a duration'],
    [{ header_timeout: '10s', request_timeout: '5s' }, 'request_timeout: must be at least header_timeout'],
  ])('refuses %j', (extra, message) => {
    expect(problems(extra).join('\n')).toContain(message);
  });
});

describe('forwarding headers', () => {
  it('are the gateway’s own: connection address, public scheme and host', () => {
    expect(forwardingHeaders(forwardedFor('https://gw.example:8443/base', '::ffff:10.0.0.7'))).toEqual({
      'x-forwarded-for': '10.0.0.7',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'gw.example:8443',
      forwarded: 'for=10.0.0.7;proto=https;host="gw.example:8443"',
    });
  });

  it('quote and bracket an IPv6 client (RFC 7239 §6)', () => {
    expect(forwardingHeaders(forwardedFor('http://gw.example', '2001:db8::1')).forwarded).toBe(
      'for="[2001:db8::1]";proto=http;host="gw.example"',
    );
  });

  it.each([
    'X-HTTP-Method-Override',
    'x-http-method',
    'X-Method-Override',
    'X-Original-URL',
    'X-Original-Method',
    'X-Rewrite-URL',
    'X-Forwarded-For',
    'X-Forwarded-Prefix',
    'Forwarded',
    'X-Real-IP',
  ])('drops the client’s %s', (name) => {
    expect(isSpoofableHeader(name)).toBe(true);
  });

  it.each(['accept', 'content-type', 'x-request-id', 'x-original'])('keeps %s', (name) => {
    expect(isSpoofableHeader(name)).toBe(false);
  });
});

describe('log hygiene', () => {
  it('strips queries from targets and error texts', () => {
    expect(withoutQuery('/rules/1?token=abc')).toBe('/rules/1');
    expect(withoutQuery(undefined)).toBe('');
    expect(withoutQueries("'/a?b=c' is not a valid url component")).toBe("'/a' is not a valid url component");
  });
});

describe('body cap', () => {
  it('refuses a declared Content-Length over the cap, and only that', () => {
    expect(declaredBodyTooLarge({ 'content-length': '11' }, 10)).toBe(true);
    expect(declaredBodyTooLarge({ 'content-length': '10' }, 10)).toBe(false);
    expect(declaredBodyTooLarge({}, 10)).toBe(false);
  });

  it('passes a body up to the cap whole, and fails one byte over it', async () => {
    const read = async (size: number) => {
      let tooLarge = false;
      const chunks: Buffer[] = [];
      const body = cappedBody(Readable.from([Buffer.alloc(size, 1)]), 10, () => {
        tooLarge = true;
      });
      try {
        for await (const chunk of body) chunks.push(chunk as Buffer);
        return { bytes: Buffer.concat(chunks).length, tooLarge };
      } catch (err) {
        return { error: (err as Error).message, tooLarge };
      }
    };
    expect(await read(10)).toEqual({ bytes: 10, tooLarge: false });
    expect(await read(11)).toEqual({ error: 'request body exceeds max_body_size', tooLarge: true });
  });
});
