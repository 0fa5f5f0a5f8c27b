import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { IdentityFile } from '@tether/protocol';
import { parse as parseYaml } from 'yaml';
import { CliError, EXIT } from '../errors.js';
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
 * routes:
 *   - { method: GET, path: /rules/:edge, action: firewall:rules.read, resource: firewall/{edge} }
 * ```
 */
export const GATEWAY_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  stalenessBudgetMs: 10_000,
  upstreamTimeoutMs: 30_000,
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
  routes: CompiledRoute[];
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
  'routes',
] as const;
const ROUTE_KEYS = ['method', 'path', 'action', 'resource'] as const;
const DURATION = /^(\d+)(ms|s|m)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000 } as const;
const ACTION = /^[\x21-\x7E]+$/;

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

  duration(field: string, value: unknown, min: number, max: number): number | undefined {
    const match = typeof value === 'string' ? DURATION.exec(value.trim()) : null;
    if (!match) return this.fail(field, 'must be a duration such as 500ms, 10s or 2m');
    const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
    if (ms < min || ms > max) return this.fail(field, `must be from ${min} ms to ${max} ms`);
    return ms;
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
  const stalenessBudgetMs =
    top.staleness_budget === undefined
      ? GATEWAY_DEFAULTS.stalenessBudgetMs
      : c.duration('staleness_budget', top.staleness_budget, 100, 600_000);
  const upstreamTimeoutMs =
    top.upstream_timeout === undefined
      ? GATEWAY_DEFAULTS.upstreamTimeoutMs
      : c.duration('upstream_timeout', top.upstream_timeout, 100, 3_600_000);
  const routes = checkRoutes(c, top.routes);
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
    routes: routes!,
  };
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
