import { isIP } from 'node:net';

/**
 * True for names that can only mean this machine: `localhost` (and `*.localhost`, RFC 6761),
 * 127.0.0.0/8, `::1` and 127.0.0.0/8 mapped into IPv6. Anything else may cross a network.
 */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) !== 6) return false;
  if (host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  // WHATWG URL writes ::ffff:127.0.0.1 as ::ffff:7f00:1.
  return /^::ffff:(?:7f[0-9a-f]{2}:[0-9a-f]{1,4}|127\.\d+\.\d+\.\d+)$/.test(host);
}

/**
 * Why `url` must not carry Tether's traffic, or undefined when it may: plain http to a host
 * that is not loopback would put tokens, DPoP proofs and revocation events on the network
 * in clear. A URL that does not parse answers undefined (its own validation refuses it).
 */
export function insecureHttpReason(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'http:' || isLoopbackHost(parsed.hostname)) return undefined;
  return `${parsed.origin} is plain http to a host that is not loopback: tokens, DPoP proofs and revocation events would cross the network unencrypted`;
}
