/**
 * The gateway's route table: which action on which resource a request is, from its method and
 * path alone. Pure; no I/O.
 *
 * A route's `path` is a template of `/`-separated segments: a literal segment compares with the
 * request's segment after percent-decoding; `:name` takes one whole, non-empty segment; a final
 * `*` takes one or more non-empty segments. Its `resource` is a template whose `{name}` parts
 * are replaced by the decoded parameters (`{*}` by what `*` took, segments joined with `/`).
 *
 * The path is checked before any route is tried, because the upstream will read it too and must
 * not read it differently from the gateway: a path with a dot segment (`.`, `..`, or encoded as
 * `%2e%2e`), an empty segment inside it (`//`), an encoded `/` or `\`, a control character, a
 * character outside RFC 3986 `pchar` or a malformed percent-encoding is refused as a whole and
 * never forwarded. So a parameter can never hold `/`, `\`, `.` or `..`, and the resource the PEP
 * decides on is the one the upstream acts on.
 */

/** The methods a route may name (besides `*`, every method). */
export const ROUTE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type RouteMethod = (typeof ROUTE_METHODS)[number];

type PathPart = { literal: string } | { param: string } | { rest: true };
type ResourcePart = { literal: string } | { param: string };

/** A route ready for matching (see {@link compileRoute}). */
export interface CompiledRoute {
  /** `*` or the methods it answers. */
  methods: '*' | readonly RouteMethod[];
  path: string;
  action: string;
  resource: string;
  readonly pathParts: readonly PathPart[];
  readonly resourceParts: readonly ResourcePart[];
}

/** What a route says, as the configuration gives it. */
export interface RouteRule {
  method: '*' | RouteMethod | readonly RouteMethod[];
  path: string;
  action: string;
  resource: string;
}

export type RouteMatch =
  | {
      kind: 'matched';
      route: CompiledRoute;
      action: string;
      resource: string;
      params: Readonly<Record<string, string>>;
      /** The request path as received (still encoded), without the query. */
      path: string;
    }
  | { kind: 'no_route' }
  | { kind: 'refused'; reason: string };

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// RFC 3986 `pchar` (unreserved, sub-delims, ':' and '@') and '/'; '%' is checked on its own.
const PATH_CHARACTERS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
const PERCENT_ENCODING = /%(?![0-9A-Fa-f]{2})/;
const RESOURCE_PLACEHOLDER = /\{([^{}]*)\}/g;

/** A route template that cannot be used; the message names what is wrong. */
export class RouteTemplateError extends Error {
  override readonly name = 'RouteTemplateError';
  constructor(
    readonly field: 'path' | 'resource',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Checks a route and prepares it for matching; throws {@link RouteTemplateError} on a template
 * that is malformed or names a parameter the path does not have.
 *
 * @example
 * ```ts
 * compileRoute({ method: 'GET', path: '/rules/:edge', action: 'firewall:rules.read', resource: 'firewall/{edge}' });
 * ```
 */
export function compileRoute(rule: RouteRule): CompiledRoute {
  const pathParts = compilePath(rule.path);
  const params = new Set(pathParts.flatMap((p) => ('param' in p ? [p.param] : 'rest' in p ? ['*'] : [])));
  const resourceParts = compileResource(rule.resource, params);
  const methods =
    rule.method === '*' ? '*' : typeof rule.method === 'string' ? [rule.method] : [...rule.method];
  return { methods, path: rule.path, action: rule.action, resource: rule.resource, pathParts, resourceParts };
}

function compilePath(path: string): PathPart[] {
  if (!path.startsWith('/')) throw new RouteTemplateError('path', 'must begin with /');
  if (path.includes('?') || path.includes('#')) throw new RouteTemplateError('path', 'must not hold ? or #');
  const segments = path.slice(1).split('/');
  const seen = new Set<string>();
  return segments.map((segment, i): PathPart => {
    const last = i === segments.length - 1;
    if (segment === '*') {
      if (!last) throw new RouteTemplateError('path', '* may only be the last segment');
      return { rest: true };
    }
    if (segment.startsWith(':')) {
      const name = segment.slice(1);
      if (!PARAM_NAME.test(name))
        throw new RouteTemplateError(
          'path',
          `parameter ${JSON.stringify(segment)} must be : and a name (letters, digits, _)`,
        );
      if (seen.has(name)) throw new RouteTemplateError('path', `parameter :${name} appears twice`);
      seen.add(name);
      return { param: name };
    }
    if (segment === '' && !last) throw new RouteTemplateError('path', 'must not hold an empty segment (//)');
    if (segment === '.' || segment === '..')
      throw new RouteTemplateError('path', 'must not hold . or .. segments');
    if (segment.includes('*') || segment.includes(':'))
      throw new RouteTemplateError('path', `segment ${JSON.stringify(segment)} mixes text with : or *`);
    if (!PATH_CHARACTERS.test(segment) || segment.includes('%'))
      throw new RouteTemplateError(
        'path',
        `segment ${JSON.stringify(segment)} holds a character that must be encoded`,
      );
    return { literal: segment };
  });
}

function compileResource(template: string, params: ReadonlySet<string>): ResourcePart[] {
  if (template === '') throw new RouteTemplateError('resource', 'is empty');
  const parts: ResourcePart[] = [];
  let at = 0;
  for (const m of template.matchAll(RESOURCE_PLACEHOLDER)) {
    const name = m[1]!;
    if (!params.has(name))
      throw new RouteTemplateError(
        'resource',
        name === '*'
          ? '{*} needs a path that ends with *'
          : `{${name}} is not a parameter of the path (${[...params].map((p) => (p === '*' ? '*' : `:${p}`)).join(', ') || 'none'})`,
      );
    if (m.index > at) parts.push({ literal: template.slice(at, m.index) });
    parts.push({ param: name });
    at = m.index + m[0].length;
  }
  if (at < template.length) parts.push({ literal: template.slice(at) });
  for (const part of parts)
    if ('literal' in part && /[{}]/.test(part.literal))
      throw new RouteTemplateError('resource', 'has an unbalanced { or }');
  return parts;
}

/**
 * The request path's segments, percent-decoded, or why the path is refused (see the module
 * comment). `target` is the request target as received: path and query.
 */
export function parseRequestPath(
  target: string,
): { ok: true; path: string; segments: string[] } | { ok: false; reason: string } {
  if (typeof target !== 'string' || !target.startsWith('/'))
    return { ok: false, reason: 'the request target must be a path beginning with /' };
  const path = target.split('?', 1)[0]!;
  if (!PATH_CHARACTERS.test(path))
    return { ok: false, reason: 'the path holds a character that must be percent-encoded' };
  if (PERCENT_ENCODING.test(path))
    return { ok: false, reason: 'the path holds a malformed percent-encoding' };
  const raw = path.slice(1).split('/');
  const segments: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw[i]!);
    } catch {
      return { ok: false, reason: 'the path holds a percent-encoding that is not UTF-8' };
    }
    if (segment === '' && i < raw.length - 1)
      return { ok: false, reason: 'the path holds an empty segment (//)' };
    if (segment === '.' || segment === '..') return { ok: false, reason: 'the path holds a . or .. segment' };
    if (segment.includes('/') || segment.includes('\\'))
      return { ok: false, reason: 'the path holds an encoded / or \\' };
    if (hasControlCharacter(segment)) return { ok: false, reason: 'the path holds a control character' };
    segments.push(segment);
  }
  return { ok: true, path, segments };
}

/** C0 controls, DEL and C1 controls. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

/**
 * The first route (in table order) that answers `method` on `target`, with its action and the
 * resource filled in; `no_route` when none does; `refused` when the path itself is refused.
 *
 * @example
 * ```ts
 * matchRoute(routes, 'GET', '/rules/edge-1?verbose=1');
 * // { kind: 'matched', action: 'firewall:rules.read', resource: 'firewall/edge-1', params: { edge: 'edge-1' }, … }
 * ```
 */
export function matchRoute(routes: readonly CompiledRoute[], method: string, target: string): RouteMatch {
  const parsed = parseRequestPath(target);
  if (!parsed.ok) return { kind: 'refused', reason: parsed.reason };
  for (const route of routes) {
    if (route.methods !== '*' && !(route.methods as readonly string[]).includes(method)) continue;
    const params = bind(route.pathParts, parsed.segments);
    if (params === undefined) continue;
    const resource = route.resourceParts.map((p) => ('literal' in p ? p.literal : params[p.param]!)).join('');
    return { kind: 'matched', route, action: route.action, resource, params, path: parsed.path };
  }
  return { kind: 'no_route' };
}

/** The parameters when `segments` fit the template, else undefined. */
function bind(parts: readonly PathPart[], segments: readonly string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if ('rest' in part) {
      const rest = segments.slice(i);
      if (rest.length === 0 || rest.includes('')) return undefined;
      params['*'] = rest.join('/');
      return params;
    }
    const segment = segments[i];
    if (segment === undefined) return undefined;
    if ('literal' in part) {
      if (segment !== part.literal) return undefined;
    } else {
      if (segment === '') return undefined;
      params[part.param] = segment;
    }
  }
  return parts.length === segments.length ? params : undefined;
}
