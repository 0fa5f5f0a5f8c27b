import { lookup as dnsLookup } from 'node:dns/promises';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { bareHost, isLocalName, isNonPublicAddress, normalizeHostEntry } from './addresses.js';

/**
 * The broker's one HTTP client for every call it makes on someone else's say-so: an issuer's or
 * a transmitter's JWKS (`jwks_uri`, fetched when an unauthenticated caller presents a token),
 * an SSF receiver's push endpoint (with the receiver's chosen Authorization header). Each such
 * URL is chosen by a tenant admin or a receiver, so the client is built not to be a way in:
 *
 * - https only; plain http only to hosts the operator names, and only when allowed for them;
 * - the name is resolved once, every address is checked, and the connection goes to the checked
 *   address (with the name as Host and TLS server name): a DNS answer that changes between the
 *   check and the connection (rebinding) cannot redirect it;
 * - loopback, link-local (cloud metadata), private, shared, multicast and reserved addresses are
 *   refused before any connection unless the operator's allow-list names the host;
 * - redirects are never followed; the answer is read as a stream and cut off past a size cap;
 *   the whole exchange has a time cap;
 * - every failure reads "unreachable", whatever happened: a closed port, a refused address, a
 *   timeout, an error status or an oversized answer look the same to whoever chose the URL. The
 *   reason is kept on the error for the operator's log only.
 */

export interface OutboundSettings {
  /** Hosts (names or IP literals) that may be or resolve to non-public addresses. */
  allowHosts: readonly string[];
  /** Whether plain http is allowed to the hosts of `allowHosts` (never to any other host). */
  allowHttp: boolean;
  /** Largest answer body read, in bytes. */
  maxResponseBytes: number;
  /** Longest time a whole exchange (resolution, connection, answer) may take. */
  timeoutMs: number;
}

/** Resolves a name to every address it has, as `dns.lookup(name, { all: true })` does. */
export type Resolver = (hostname: string) => Promise<{ address: string; family: number }[]>;

const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** Why an outbound call failed; the message is always "unreachable", the reason is for logs only. */
export class Unreachable extends Error {
  constructor(readonly reason: string) {
    super('unreachable');
    this.name = 'Unreachable';
  }
}

export interface OutboundRequest {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** Lower than the operator's cap, never higher. */
  timeoutMs?: number;
  /** Lower than the operator's cap, never higher. */
  maxBytes?: number;
  /** Past the size cap: fail (default), or answer what was read so far, marked truncated. */
  oversize?: 'fail' | 'truncate';
  signal?: AbortSignal;
}

export interface OutboundResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  truncated: boolean;
}

/** A connection that goes to the address already checked, whatever the name resolves to now. */
function pinnedLookup(address: string, family: number): LookupFunction {
  return ((_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  }) as LookupFunction;
}

export class OutboundClient {
  readonly settings: OutboundSettings;
  readonly #allowed: Set<string>;
  readonly #resolve: Resolver;

  constructor(settings: OutboundSettings, options: { resolver?: Resolver } = {}) {
    this.settings = settings;
    this.#allowed = new Set(
      settings.allowHosts.map(normalizeHostEntry).filter((h): h is string => h !== undefined),
    );
    this.#resolve = options.resolver ?? systemResolver;
  }

  /** Whether the operator's allow-list names this host (as a URL spells it). */
  isAllowedHost(hostname: string): boolean {
    return this.#allowed.has(bareHost(hostname));
  }

  /**
   * What can be told about a URL without any network traffic: undefined when it may be called,
   * else why not, in words fit for the admin who gave it (it says nothing about any network).
   */
  refusalOf(raw: string): string | undefined {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return 'is not a URL';
    }
    if (url.username || url.password || url.hash) return 'may not carry credentials or a fragment';
    const host = bareHost(url.hostname);
    const allowed = this.#allowed.has(host);
    if (url.protocol === 'http:') {
      if (!(allowed && this.settings.allowHttp))
        return 'must be an https URL (plain http only to hosts the operator allows it for)';
    } else if (url.protocol !== 'https:') return 'must be an https URL';
    if (!allowed && (isLocalName(host) || (isIP(host) !== 0 && isNonPublicAddress(host))))
      return 'names a loopback, private, link-local or reserved address; the broker connects there only when the operator allows the host (outboundAllowHosts)';
    return undefined;
  }

  /**
   * One HTTP exchange under every rule above. Throws {@link Unreachable} on any failure,
   * including a refused destination; a non-2xx status is an answer, not a failure.
   */
  async request(raw: string, init: OutboundRequest = {}): Promise<OutboundResponse> {
    const refusal = this.refusalOf(raw);
    if (refusal !== undefined) throw new Unreachable(`destination refused: ${refusal}`);
    const url = new URL(raw);
    const timeoutMs = Math.min(init.timeoutMs ?? this.settings.timeoutMs, this.settings.timeoutMs);
    const maxBytes = Math.min(
      init.maxBytes ?? this.settings.maxResponseBytes,
      this.settings.maxResponseBytes,
    );
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = init.signal ? AbortSignal.any([deadline, init.signal]) : deadline;
    const target = await this.#destination(url, signal);
    return this.#exchange(url, target, init, maxBytes, signal);
  }

  /**
   * Why the broker would not open a connection of another protocol (a database's) to `hostname`,
   * told without network traffic; undefined when it may. The rule is the HTTP one: loopback,
   * private, link-local and reserved addresses only for hosts the operator allows.
   */
  hostRefusal(hostname: string): string | undefined {
    const host = bareHost(hostname);
    if (host === '') return 'names no host';
    // As an https URL would read it: `2130706433`, `0x7f.1`, `127.1` are all 127.0.0.1 there (and
    // to the resolver), while a non-special scheme such as postgres: leaves them as written.
    if (canonicalHost(hostname) !== hostname.toLowerCase())
      return 'must name its host plainly (a name, a dotted IPv4 address or a bracketed IPv6 address)';
    if (this.#allowed.has(host)) return undefined;
    if (isLocalName(host) || (isIP(host) !== 0 && isNonPublicAddress(host)))
      return 'names a loopback, private, link-local or reserved address; the broker connects there only when the operator allows the host (outboundAllowHosts)';
    return undefined;
  }

  /**
   * The address a connection of another protocol to `hostname` goes to: resolved once and every
   * answer checked, as for HTTP; connect to it (not to the name) so a changed DNS answer cannot
   * redirect the connection. Throws {@link Unreachable}.
   */
  async checkedAddress(hostname: string): Promise<{ address: string; family: number }> {
    const refusal = this.hostRefusal(hostname);
    if (refusal !== undefined) throw new Unreachable(`destination refused: ${refusal}`);
    return this.#destination(new URL(`https://${hostname}/`), AbortSignal.timeout(this.settings.timeoutMs));
  }

  /** The one address to connect to: resolved, every answer checked, unless the host is allowed. */
  async #destination(url: URL, signal: AbortSignal): Promise<{ address: string; family: number }> {
    const host = bareHost(url.hostname);
    const literal = isIP(host);
    if (literal !== 0) {
      // Checked again here, whatever the caller checked: a literal is its own destination.
      if (!this.#allowed.has(host) && isNonPublicAddress(host))
        throw new Unreachable('destination refused: a non-public address');
      return { address: host, family: literal };
    }
    let addresses: { address: string; family: number }[];
    try {
      addresses = await Promise.race([
        this.#resolve(host),
        new Promise<never>((_, reject) =>
          signal.addEventListener('abort', () => reject(new Unreachable('timed out resolving')), {
            once: true,
          }),
        ),
      ]);
    } catch (err) {
      throw err instanceof Unreachable ? err : new Unreachable('name does not resolve');
    }
    const first = addresses[0];
    if (!first) throw new Unreachable('name does not resolve');
    // One non-public answer among public ones is enough to refuse: which one a connection would
    // use is not ours to predict.
    if (!this.#allowed.has(host) && addresses.some((a) => isNonPublicAddress(a.address)))
      throw new Unreachable('name resolves to a non-public address');
    return first;
  }

  #exchange(
    url: URL,
    target: { address: string; family: number },
    init: OutboundRequest,
    maxBytes: number,
    signal: AbortSignal,
  ): Promise<OutboundResponse> {
    const secure = url.protocol === 'https:';
    const host = bareHost(url.hostname);
    const body = init.body === undefined ? undefined : Buffer.from(init.body, 'utf8');
    return new Promise<OutboundResponse>((resolve, reject) => {
      let settled = false;
      const fail = (reason: string) => {
        if (settled) return;
        settled = true;
        request.destroy();
        reject(new Unreachable(reason));
      };
      const request = (secure ? https : http).request({
        protocol: url.protocol,
        hostname: host,
        port: url.port === '' ? undefined : Number(url.port),
        path: `${url.pathname}${url.search}`,
        method: init.method ?? 'GET',
        headers: {
          ...init.headers,
          ...(body === undefined ? {} : { 'content-length': String(body.byteLength) }),
        },
        // A fresh connection each time: no pooled socket to a destination checked for someone else.
        agent: false,
        lookup: pinnedLookup(target.address, target.family),
        family: target.family,
        ...(secure && isIP(host) === 0 ? { servername: host } : {}),
      });
      const onAbort = () => fail('timed out');
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      request.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
      request.on('close', () => signal.removeEventListener('abort', onAbort));
      request.on('response', (response: IncomingMessage) => {
        const status = response.statusCode ?? 0;
        const declared = Number(response.headers['content-length'] ?? '0');
        const chunks: Buffer[] = [];
        let size = 0;
        const done = (truncated: boolean) => {
          if (settled) return;
          settled = true;
          if (truncated) request.destroy();
          resolve({ status, headers: response.headers, body: Buffer.concat(chunks), truncated });
        };
        const tooLarge = () => (init.oversize === 'truncate' ? done(true) : fail('answer too large'));
        if (Number.isFinite(declared) && declared > maxBytes) return tooLarge();
        response.on('data', (chunk: Buffer) => {
          if (settled) return;
          size += chunk.byteLength;
          // Cut off here: nothing past the cap is kept, and the connection is closed at once.
          if (size > maxBytes) return tooLarge();
          chunks.push(chunk);
        });
        response.on('end', () => done(false));
        response.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
        response.on('aborted', () => fail('answer cut short'));
      });
      request.end(body);
    });
  }
}

/** A host as an https URL reads it (numeric IPv4 forms normalised), or '' if it is not one. */
function canonicalHost(hostname: string): string {
  try {
    return new URL(`https://${hostname}/`).hostname;
  } catch {
    return '';
  }
}
