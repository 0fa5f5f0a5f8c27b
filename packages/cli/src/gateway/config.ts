import { readFileSync } from 'node:fs';
import type { ServerOptions } from 'node:https';
import { homedir } from 'node:os';
import { dirname, resolve } from 'node:path';
import { type IdentityFile, insecureHttpReason } from '@tether-broker/protocol';
import { parse as parseYaml } from 'yaml';
import { CliError, EXIT } from '../errors.js';
import type { RequestLimits } from './hardening.js';
import {
  type CompiledRoute,
  compileRoute,
  ROUTE_METHODS,
  type RouteMethod,
  RouteTemplateError,
} from './routes.js';

/**
 * The gateway's configuration file (YAML), validated whole before anything starts: every
 * problem is reported at once, each naming its field; unknown keys are refused, not ignored.
 *
 * ```yaml
 * listen: { host: 127.0.0.1, port: 8701 }
 * public_url: http://127.0.0.1:8701        # what clients call; DPoP `htu` is checked against it
 * upstream: http://127.0.0.1:9801          # the service behind the gateway (may carry a base path)
 * broker: http://127.0.0.1:8700            # default: the identity file's broker
 * issuer: http://127.0.0.1:8700            # the broker's public URL, if it differs from `broker`
 * identity: ~/.tether/demo/edge-gateway.json   # the gateway's PEP principal (role pep)
 * audience: http://127.0.0.1:8701          # default: public_url
 * staleness_budget: 10s                    # deny everything when not confirmed fresh this long
 * upstream_timeout: 30s
 * header_timeout: 10s                      # a client must send its headers within this
 * request_timeout: 60s                     # ... and its whole request, body included, within this
 * max_body_size: 32mb                      # a longer body is refused with 413 (b, kb, mb, gb)
 * dpop_nonce_window: 5m                    # proofs must carry a nonce this gateway process issued
 * routes:
 *   - { method: GET, path: /rules/:edge, action: firewall:rules.read, resource: firewall/{edge} }
 * ```
 */
export const GATEWAY_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  stalenessBudgetMs: 10_000,
  upstreamTimeoutMs: 30_000,
  /** Headers must arrive within this (slowloris): the connection is closed. */
  headerTimeoutMs: 10_000,
  /** The whole request, body included, must arrive within this: slow bodies are cut. */
  requestTimeoutMs: 60_000,
  /** Request bodies are forwarded up to this many bytes; a longer one is answered 413. */
  maxBodyBytes: 32 * 1024 * 1024,
  /** DPoP nonce window (RFC 9449 §9): proofs must carry a nonce this gateway process issued. */
  dpopNonceWindowMs: 300_000,
});

/** Paths the gateway answers itself; no route may claim them. */
export const GATEWAY_OWN_PATHS = ['/healthz', '/metrics'] as const;

/** What the file says, checked, before the identity is loaded. */
export interface GatewaySettings {
  listen: { host: string; port: number };
  /** Origin and optional base path clients call, without a trailing `/`. */
  publicUrl: string;
  /** Origin and optional base path of the service behind the gateway, without a trailing `/`. */
  upstream: string;
  broker: string | undefined;
  issuer: string | undefined;
  /** Absolute path of the identity file, when the file names one. */
  identityFile: string | undefined;
  audience: string | undefined;
  stalenessBudgetMs: number;
  upstreamTimeoutMs: number;
  /** How long a client may take to send its headers, and its whole request; the body cap. */
  limits: RequestLimits;
  /** A DPoP nonce is handed out for this long (and accepted one more window). */
  dpopNonceWindowMs: number;
  routes: CompiledRoute[];
  /** Serve HTTPS with these PEM files (absolute paths); `clientCa`: require client certificates it issued. */
  tls: GatewayTls | undefined;
  /** Start even though `public_url` or the broker URL is plain http to a host that is not loopback. */
  allowInsecureHttp: boolean;
}

export interface GatewayTls {
  cert: string;
  key: string;
  clientCa: string | undefined;
}

/** Everything the gateway runs with. */
export interface GatewayConfig extends Omit<GatewaySettings, 'identityFile' | 'broker' | 'audience'> {
  broker: string;
  audience: string;
  /** The gateway's PEP principal: its tenant is the tenant the gateway enforces for. */
  identity: IdentityFile;
}

/** A configuration that cannot be used: every problem, one per line, each naming its field. */
export class GatewayConfigError extends CliError {
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super(
      'invalid_config',
      `${source} cannot be used:${problems.map((p) => `\n  ${p}`).join('')}`,
      EXIT.usage,
      'see examples/gateway.yaml',
    );
  }
}

const TOP_KEYS = [
  'listen',
  'public_url',
  'upstream',
  'broker',
  'issuer',
  'identity',
  'audience',
  'staleness_budget',
  'upstream_timeout',
  'header_timeout',
  'request_timeout',
  'max_body_size',
  'dpop_nonce_window',
  'routes',
  'tls',
  'allow_insecure_http',
] as const;
const ROUTE_KEYS = ['method', 'path', 'action', 'resource'] as const;
const DURATION = /^(\d+)(ms|s|m)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000 } as const;
const ACTION = /^[\x21-\x7E]+$/;
const SIZE = /^(\d+)\s*(b|kb|mb|gb)$/i;
const UNIT_BYTES = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 } as const;

/** Collects problems; each check answers the value when it is good, else undefined. */
class Checker {
  readonly problems: string[] = [];

  fail(field: string, message: string): undefined {
    this.problems.push(`${field}: ${message}`);
    return undefined;
  }

  object(field: string, value: unknown, keys: readonly string[]): Record<string, unknown> | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      return this.fail(field, 'must be a mapping');
    for (const key of Object.keys(value))
      if (!keys.includes(key))
        this.fail(field === '' ? key : `${field}.${key}`, `unknown setting (known: ${keys.join(', ')})`);
    return value as Record<string, unknown>;
  }

  string(field: string, value: unknown): string | undefined {
    if (typeof value !== 'string' || value.trim() === '')
      return this.fail(field, 'must be a non-empty string');
    return value;
  }

  url(field: string, value: unknown): string | undefined {
    const text = this.string(field, value);
    if (text === undefined) return undefined;
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return this.fail(field, `${JSON.stringify(text)} is not an absolute URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      return this.fail(field, 'must be an http(s) URL');
    if (url.search !== '' || url.hash !== '' || text.includes('?') || text.includes('#'))
      return this.fail(field, 'must not carry a query or fragment');
    if (url.username !== '' || url.password !== '') return this.fail(field, 'must not carry credentials');
    return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
  }

  port(field: string, value: unknown): number | undefined {
    if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 65535)
      return this.fail(field, 'must be an integer from 0 to 65535');
    return value as number;
  }

  /** A duration setting `field` of `top`, or `fallback` when it is absent. */
  durationOr(
    top: Record<string, unknown>,
    field: string,
    fallback: number,
    min: number,
    max: number,
  ): number | undefined {
    return top[field] === undefined ? fallback : this.duration(field, top[field], min, max);
  }

  duration(field: string, value: unknown, min: number, max: number): number | undefined {
    const match = typeof value === 'string' ? DURATION.exec(value.trim()) : null;
    if (!match) return this.fail(field, 'must be a duration such as 500ms, 10s or 2m');
    const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
    if (ms < min || ms > max) return this.fail(field, `must be from ${min} ms to ${max} ms`);
    return ms;
  }

  size(field: string, value: unknown, max: number): number | undefined {
    const match = typeof value === 'string' ? SIZE.exec(value.trim()) : null;
    const bytes = Number.isInteger(value)
      ? (value as number)
      : match
        ? Number(match[1]) * UNIT_BYTES[match[2]!.toLowerCase() as keyof typeof UNIT_BYTES]
        : undefined;
    if (bytes === undefined) return this.fail(field, 'must be a size such as 512kb, 32mb or 1gb (or bytes)');
    if (bytes < 0 || bytes > max) return this.fail(field, `must be from 0 to ${max} bytes`);
    return bytes;
  }
}

/**
 * Validates a parsed configuration file. Relative `identity` paths are read from `baseDir`
 * (the file's directory); `~/` is the home directory.
 *
 * @example
 * ```ts
 * const settings = validateGatewayConfig(parseYaml(text), dirname(file), file);
 * ```
 */
export function validateGatewayConfig(
  value: unknown,
  baseDir: string,
  source = 'gateway config',
): GatewaySettings {
  const c = new Checker();
  const top = c.object('', value ?? undefined, TOP_KEYS);
  if (top === undefined) throw new GatewayConfigError(source, c.problems);
  const listen = top.listen === undefined ? undefined : c.object('listen', top.listen, ['host', 'port']);
  if (top.listen === undefined) c.fail('listen', 'is required (listen: { host, port })');
  const host = listen?.host === undefined ? GATEWAY_DEFAULTS.host : c.string('listen.host', listen.host);
  const port = listen === undefined ? undefined : c.port('listen.port', listen.port);
  const publicUrl = c.url('public_url', top.public_url);
  const upstream = c.url('upstream', top.upstream);
  const broker = top.broker === undefined ? undefined : c.url('broker', top.broker);
  const issuer = top.issuer === undefined ? undefined : c.url('issuer', top.issuer);
  const audience = top.audience === undefined ? undefined : c.string('audience', top.audience);
  const identity = top.identity === undefined ? undefined : c.string('identity', top.identity);
  const stalenessBudgetMs = c.durationOr(
    top,
    'staleness_budget',
    GATEWAY_DEFAULTS.stalenessBudgetMs,
    100,
    600_000,
  );
  const upstreamTimeoutMs = c.durationOr(
    top,
    'upstream_timeout',
    GATEWAY_DEFAULTS.upstreamTimeoutMs,
    100,
    3_600_000,
  );
  const dpopNonceWindowMs = c.durationOr(
    top,
    'dpop_nonce_window',
    GATEWAY_DEFAULTS.dpopNonceWindowMs,
    1000,
    3_600_000,
  );
  const limits = checkLimits(c, top);
  const routes = checkRoutes(c, top.routes);
  const tls = top.tls === undefined ? undefined : checkTls(c, top.tls, baseDir);
  const allowInsecureHttp =
    top.allow_insecure_http === undefined || typeof top.allow_insecure_http === 'boolean'
      ? top.allow_insecure_http === true
      : c.fail('allow_insecure_http', 'must be true or false');
  if (c.problems.length > 0) throw new GatewayConfigError(source, c.problems);
  return {
    listen: { host: host!, port: port! },
    publicUrl: publicUrl!,
    upstream: upstream!,
    broker,
    issuer,
    identityFile: identity === undefined ? undefined : resolvePath(identity, baseDir),
    audience,
    stalenessBudgetMs: stalenessBudgetMs!,
    upstreamTimeoutMs: upstreamTimeoutMs!,
    limits: limits!,
    dpopNonceWindowMs: dpopNonceWindowMs!,
    routes: routes!,
    tls,
    allowInsecureHttp: allowInsecureHttp!,
  };
}

function checkTls(c: Checker, value: unknown, baseDir: string): GatewayTls | undefined {
  const tls = c.object('tls', value, ['cert', 'key', 'client_ca']);
  if (tls === undefined) return undefined;
  const cert = c.string('tls.cert', tls.cert);
  const key = c.string('tls.key', tls.key);
  const clientCa = tls.client_ca === undefined ? undefined : c.string('tls.client_ca', tls.client_ca);
  if (cert === undefined || key === undefined) return undefined;
  return {
    cert: resolvePath(cert, baseDir),
    key: resolvePath(key, baseDir),
    clientCa: clientCa === undefined ? undefined : resolvePath(clientCa, baseDir),
  };
}

/** The HTTPS server options of `tls`: the PEM files read now, so a bad path fails at start. */
export function gatewayHttpsOptions(tls: GatewayTls): ServerOptions {
  const read = (field: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      // The path and the errno only: never the file's content.
      throw new CliError(
        'config_unreadable',
        `cannot read ${field} ${path}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
        EXIT.usage,
      );
    }
  };
  const options: ServerOptions = {
    cert: read('tls.cert', tls.cert),
    key: read('tls.key', tls.key),
    minVersion: 'TLSv1.2',
  };
  if (tls.clientCa !== undefined) {
    // Mutual TLS: the handshake refuses a client without a certificate from this CA.
    options.ca = read('tls.client_ca', tls.clientCa);
    options.requestCert = true;
    options.rejectUnauthorized = true;
  }
  return options;
}

/**
 * The gateway's URLs that would carry tokens, proofs or revocation events in clear: plain
 * http to a host that is not loopback, for `public_url` (clients send their tokens there)
 * and the broker (the revocation log and the gateway's own credentials). Empty when
 * `allow_insecure_http` is set.
 */
export function insecureGatewayUrls(
  config: Pick<GatewayConfig, 'publicUrl' | 'broker' | 'allowInsecureHttp'>,
): string[] {
  if (config.allowInsecureHttp) return [];
  const problems: string[] = [];
  for (const [field, url] of [
    ['public_url', config.publicUrl],
    ['broker', config.broker],
  ] as const) {
    const reason = insecureHttpReason(url);
    if (reason !== undefined)
      problems.push(
        `${field}: ${reason}; use https, or set allow_insecure_http: true to run over plain http anyway`,
      );
  }
  return problems;
}

/** Request timeouts and the body cap: a slow or huge request must not hold the gateway. */
function checkLimits(c: Checker, top: Record<string, unknown>): RequestLimits | undefined {
  const headerTimeoutMs = c.durationOr(top, 'header_timeout', GATEWAY_DEFAULTS.headerTimeoutMs, 100, 300_000);
  const requestTimeoutMs = c.durationOr(
    top,
    'request_timeout',
    GATEWAY_DEFAULTS.requestTimeoutMs,
    100,
    3_600_000,
  );
  const maxBodyBytes =
    top.max_body_size === undefined
      ? GATEWAY_DEFAULTS.maxBodyBytes
      : c.size('max_body_size', top.max_body_size, 16 * 1024 ** 3);
  if (headerTimeoutMs === undefined || requestTimeoutMs === undefined || maxBodyBytes === undefined)
    return undefined;
  // Node refuses a request timeout shorter than the header timeout: the headers are part of it.
  if (requestTimeoutMs < headerTimeoutMs)
    return c.fail('request_timeout', `must be at least header_timeout (${headerTimeoutMs} ms)`);
  return { headerTimeoutMs, requestTimeoutMs, maxBodyBytes };
}

function checkRoutes(c: Checker, value: unknown): CompiledRoute[] | undefined {
  if (!Array.isArray(value) || value.length === 0)
    return c.fail('routes', 'must be a list of at least one route; nothing is forwarded without one');
  const routes: CompiledRoute[] = [];
  const seen = new Map<string, number>();
  value.forEach((item, i) => {
    const field = `routes[${i}]`;
    const route = c.object(field, item, ROUTE_KEYS);
    if (route === undefined) return;
    const method = checkMethod(c, `${field}.method`, route.method);
    const path = c.string(`${field}.path`, route.path);
    const action = c.string(`${field}.action`, route.action);
    const resource = c.string(`${field}.resource`, route.resource);
    if (action !== undefined && (!ACTION.test(action) || action.includes('*')))
      c.fail(`${field}.action`, 'must be one concrete action: printable, no spaces, no *');
    if (path !== undefined && (GATEWAY_OWN_PATHS as readonly string[]).includes(path))
      c.fail(`${field}.path`, `${path} is answered by the gateway itself`);
    if (method === undefined || path === undefined || action === undefined || resource === undefined) return;
    let compiled: CompiledRoute;
    try {
      compiled = compileRoute({ method, path, action, resource });
    } catch (err) {
      if (!(err instanceof RouteTemplateError)) throw err;
      c.fail(`${field}.${err.field}`, err.message);
      return;
    }
    const key = `${compiled.methods === '*' ? '*' : [...compiled.methods].sort().join(',')} ${path}`;
    const earlier = seen.get(key);
    if (earlier !== undefined) c.fail(field, `repeats routes[${earlier}] (same method and path)`);
    else seen.set(key, i);
    routes.push(compiled);
  });
  return routes;
}

function checkMethod(
  c: Checker,
  field: string,
  value: unknown,
): '*' | RouteMethod | RouteMethod[] | undefined {
  const allowed = ROUTE_METHODS as readonly string[];
  const expected = `must be *, one of ${ROUTE_METHODS.join(', ')}, or a list of them`;
  if (value === '*') return '*';
  if (typeof value === 'string')
    return allowed.includes(value) ? (value as RouteMethod) : c.fail(field, expected);
  if (!Array.isArray(value) || value.length === 0) return c.fail(field, expected);
  if (!value.every((m) => typeof m === 'string' && allowed.includes(m))) return c.fail(field, expected);
  if (new Set(value).size !== value.length) return c.fail(field, 'names a method twice');
  return value as RouteMethod[];
}

function resolvePath(path: string, baseDir: string): string {
  if (path === '~' || path.startsWith('~/')) return resolve(homedir(), path.slice(2));
  return resolve(baseDir, path);
}

/** Reads, parses and validates a configuration file. */
export function readGatewayConfig(file: string): GatewaySettings {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(
      'config_unreadable',
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      EXIT.usage,
    );
  }
  let parsed: unknown;
  try {
    // One document, plain data: no custom tags, no merge keys, unique keys.
    parsed = parseYaml(text, { schema: 'core', merge: false, uniqueKeys: true, maxAliasCount: 0 });
  } catch (err) {
    throw new GatewayConfigError(file, [`not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  return validateGatewayConfig(parsed, dirname(resolve(file)), file);
}

/** The configuration to run with, once the identity is loaded: broker and audience filled in. */
export function resolveGatewayConfig(settings: GatewaySettings, identity: IdentityFile): GatewayConfig {
  const { identityFile: _file, ...rest } = settings;
  return {
    ...rest,
    broker: settings.broker ?? identity.broker.replace(/\/+$/, ''),
    audience: settings.audience ?? settings.publicUrl,
    identity,
  };
}
