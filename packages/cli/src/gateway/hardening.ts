/**
 * What the gateway does to every request besides deciding it: how long a client may take to send
 * it, how big its body may be, which of its headers never reach the upstream, which forwarding
 * headers the gateway sets itself, and what of it may appear in a log line. Pure helpers; the
 * server wires them in.
 */
import type { IncomingHttpHeaders, Server } from 'node:http';
import { isIPv6 } from 'node:net';
import { type Readable, Transform } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';

/** How long a client may take to send a request, and how big its body may be. */
export interface RequestLimits {
  /** From the connection (or the end of the previous request) to the end of the headers. */
  headerTimeoutMs: number;
  /** From the connection to the last byte of the body: a slow body is cut here. */
  requestTimeoutMs: number;
  /** Bytes of request body forwarded at most; a longer body is answered 413. */
  maxBodyBytes: number;
}

/** An idle keep-alive connection is closed after this long (Fastify's default holds it 72 s). */
const KEEP_ALIVE_MS = 5_000;

/**
 * Puts the limits on the HTTP server before it listens. Node checks the header and request
 * timeouts on a timer (30 s by default), so the timer runs often enough for the configured
 * timeouts to hold within about a quarter of the header timeout.
 */
export function applyRequestTimeouts(server: Server, limits: RequestLimits): void {
  server.headersTimeout = limits.headerTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = Math.min(KEEP_ALIVE_MS, limits.requestTimeoutMs);
  // Read by Node when the server starts listening (setupConnectionsTracking).
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.max(
    25,
    Math.min(1000, Math.floor(limits.headerTimeoutMs / 4)),
  );
}

/** The body a client declared (Content-Length) is larger than the gateway forwards. */
export function declaredBodyTooLarge(headers: IncomingHttpHeaders, maxBodyBytes: number): boolean {
  const declared = headers['content-length'];
  return declared !== undefined && /^\d+$/.test(declared) && Number(declared) > maxBodyBytes;
}

/** Whether a request has a body the gateway has not read (and will not read unless it forwards). */
export function hasBody(headers: IncomingHttpHeaders): boolean {
  return (
    headers['transfer-encoding'] !== undefined ||
    (headers['content-length'] !== undefined && headers['content-length'] !== '0')
  );
}

/**
 * The request body, counted as it streams to the upstream: past `maxBodyBytes` the stream fails
 * (the upstream request is abandoned) and `onTooLarge` is called so that the client gets a 413.
 * The client's stream itself is left alone, unread: the server closes the connection.
 */
export function cappedBody(body: Readable, maxBodyBytes: number, onTooLarge: () => void): Readable {
  let seen = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen <= maxBodyBytes) return done(null, chunk);
      body.unpipe(counted);
      body.pause();
      onTooLarge();
      done(new Error('request body exceeds max_body_size'));
    },
  });
  body.on('error', (err) => counted.destroy(err));
  return body.pipe(counted);
}

/**
 * Headers that ask a server to treat a request as another method or another URL than the one
 * the gateway decided on (`X-HTTP-Method-Override: DELETE` on an allowed GET), or that claim
 * where the request came from. Dropped: the gateway sets the forwarding headers itself.
 */
const SPOOFABLE = new Set([
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-method',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
  'x-override-url',
  'forwarded',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
  'front-end-https',
  'x-url-scheme',
]);
const SPOOFABLE_PREFIXES = ['x-forwarded-', 'x-original-', 'x-http-method'];

/** Whether a client header must not reach the upstream (see {@link SPOOFABLE}). */
export function isSpoofableHeader(name: string): boolean {
  const key = name.toLowerCase();
  return SPOOFABLE.has(key) || SPOOFABLE_PREFIXES.some((prefix) => key.startsWith(prefix));
}

/** Who called and how, as the gateway saw it: the values of the forwarding headers it sets. */
export interface ForwardedFor {
  /** The client's address, from the connection (never from a header). */
  clientAddress: string;
  /** `http` or `https`: how clients reach the gateway (its `public_url`). */
  proto: string;
  /** The gateway's public host (and port), from its `public_url`: never the client's `Host`. */
  host: string;
}

/** `X-Forwarded-For/-Proto/-Host` and RFC 7239 `Forwarded`, replacing whatever a client sent. */
export function forwardingHeaders(f: ForwardedFor): Record<string, string> {
  const address = f.clientAddress.startsWith('::ffff:') ? f.clientAddress.slice(7) : f.clientAddress;
  // RFC 7239 §6: an IPv6 node is bracketed and quoted; a host with a port needs quoting too.
  const node = isIPv6(address) ? `"[${address}]"` : address;
  return {
    'x-forwarded-for': address,
    'x-forwarded-proto': f.proto,
    'x-forwarded-host': f.host,
    forwarded: `for=${node};proto=${f.proto};host="${f.host}"`,
  };
}

/** The forwarding values for a gateway whose clients call `publicUrl`. */
export function forwardedFor(publicUrl: string, clientAddress: string | undefined): ForwardedFor {
  const url = new URL(publicUrl);
  return { clientAddress: clientAddress ?? 'unknown', proto: url.protocol.slice(0, -1), host: url.host };
}

/** A request target without its query: queries carry tokens and personal data, logs must not. */
export function withoutQuery(target: string | undefined): string {
  return (target ?? '').split('?', 1)[0]!;
}

/** Error texts may quote the request target: anything from a `?` to the next space or quote goes. */
export function withoutQueries(text: string): string {
  return text.replace(/\?[^\s'"`]*/g, '');
}

/**
 * The logger Fastify logs requests with: the same as `logger`, except that a request is logged
 * as method, path (no query) and client address. The audit keeps paths without queries too.
 */
export function requestLogger(logger: FastifyBaseLogger): FastifyBaseLogger {
  return logger.child(
    {},
    {
      serializers: {
        req: (req: { method?: string; url?: string; ip?: string; socket?: { remotePort?: number } }) => ({
          method: req.method,
          url: withoutQuery(req.url),
          remoteAddress: req.ip,
          remotePort: req.socket?.remotePort,
        }),
      },
    },
  );
}
