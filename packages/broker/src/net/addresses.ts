import { BlockList, isIP } from 'node:net';

/**
 * Address ranges the broker never connects to on an admin's or a receiver's say-so: loopback,
 * link-local (cloud metadata at 169.254.169.254 included), private networks, shared address
 * space, documentation and benchmark nets, multicast, reserved, and the IPv6 forms that embed
 * an IPv4 address (mapped, NAT64, 6to4, Teredo), so that none of them can be used to reach the
 * IPv4 ranges by another spelling. Only an operator's allow-list opens them.
 */
const NON_PUBLIC_V4: [string, number][] = [
  ['0.0.0.0', 8], // "this network"; 0.0.0.0 reaches the local host on Linux
  ['10.0.0.0', 8], // RFC 1918
  ['100.64.0.0', 10], // CGNAT shared address space (RFC 6598)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata endpoints
  ['172.16.0.0', 12], // RFC 1918
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // TEST-NET-1
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // RFC 1918
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // TEST-NET-2
  ['203.0.113.0', 24], // TEST-NET-3
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];

const NON_PUBLIC_V6: [string, number][] = [
  ['::', 96], // unspecified, loopback, IPv4-compatible
  ['::ffff:0:0', 96], // IPv4-mapped
  ['64:ff9b::', 96], // NAT64
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard-only
  ['2001::', 23], // IETF protocol assignments (Teredo included)
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4
  ['fc00::', 7], // unique local (ULA)
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
];

// Two lists, each checked with its own family only: a BlockList also matches an IPv4 address
// against IPv6 rules through its mapped form (::ffff:a.b.c.d), so one list holding the
// `::ffff:0:0/96` rule refused every IPv4 address, public ones included (Node 20).
const NON_PUBLIC_IPV4 = new BlockList();
for (const [net, prefix] of NON_PUBLIC_V4) NON_PUBLIC_IPV4.addSubnet(net, prefix, 'ipv4');
const NON_PUBLIC_IPV6 = new BlockList();
for (const [net, prefix] of NON_PUBLIC_V6) NON_PUBLIC_IPV6.addSubnet(net, prefix, 'ipv6');

/** Whether `address` (an IP literal, no brackets) is outside the public unicast space. Not an IP: true. */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  // IPv6 forms embedding an IPv4 address (mapped, NAT64, 6to4, Teredo) are non-public as a
  // whole: each is one of the IPv6 ranges listed.
  return family === 4 ? NON_PUBLIC_IPV4.check(address, 'ipv4') : NON_PUBLIC_IPV6.check(address, 'ipv6');
}

/** A URL's hostname as compared with the allow-list: lower case, IPv6 without brackets. */
export function bareHost(hostname: string): string {
  const lower = hostname.toLowerCase();
  return lower.startsWith('[') && lower.endsWith(']') ? lower.slice(1, -1) : lower;
}

/**
 * An allow-list entry as a URL would spell its host (`LOCALHOST` → `localhost`,
 * `0:0:0:0:0:0:0:1` → `::1`, `2130706433` → `127.0.0.1`), or undefined when it is not a host.
 */
export function normalizeHostEntry(entry: string): string | undefined {
  const trimmed = entry.trim();
  if (trimmed === '') return undefined;
  const inBrackets = isIP(trimmed) === 6 ? `[${trimmed}]` : trimmed;
  try {
    const url = new URL(`https://${inBrackets}/`);
    if (url.port !== '' || url.username !== '' || url.pathname !== '/') return undefined;
    return bareHost(url.hostname);
  } catch {
    return undefined;
  }
}

/** Names that resolve to the local host by definition (RFC 6761), whatever DNS says. */
export function isLocalName(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost') || host === 'localhost.';
}
