import { describe, expect, it } from 'vitest';
import { type CompiledRoute, compileRoute, matchRoute, parseRequestPath, type RouteRule } from './routes.js';

const table: CompiledRoute[] = (
  [
    { method: 'GET', path: '/rules/:edge', action: 'firewall:rules.read', resource: 'firewall/{edge}' },
    {
      method: ['POST', 'DELETE'],
      path: '/rules/:edge',
      action: 'firewall:rules.write',
      resource: 'firewall/{edge}',
    },
    {
      method: 'DELETE',
      path: '/rules/:edge/:id',
      action: 'firewall:rules.write',
      resource: 'firewall/{edge}/rules/{id}',
    },
    { method: '*', path: '/files/*', action: 'files:access', resource: 'files/{*}' },
    { method: 'GET', path: '/', action: 'site:read', resource: 'site' },
    { method: 'GET', path: '/status/', action: 'site:read', resource: 'site/status' },
  ] satisfies RouteRule[]
).map(compileRoute);

const match = (method: string, target: string) => matchRoute(table, method, target);

describe('route matching: method + path to action + resource', () => {
  it.each([
    ['GET', '/rules/edge-1', 'firewall:rules.read', 'firewall/edge-1'],
    ['GET', '/rules/edge-1?verbose=1&x=/..', 'firewall:rules.read', 'firewall/edge-1'],
    ['POST', '/rules/edge-2', 'firewall:rules.write', 'firewall/edge-2'],
    ['DELETE', '/rules/edge-2', 'firewall:rules.write', 'firewall/edge-2'],
    ['DELETE', '/rules/edge-2/r-9', 'firewall:rules.write', 'firewall/edge-2/rules/r-9'],
    ['PATCH', '/files/a/b/c.txt', 'files:access', 'files/a/b/c.txt'],
    ['GET', '/', 'site:read', 'site'],
    ['GET', '/status/', 'site:read', 'site/status'],
  ])('%s %s → %s on %s', (method, target, action, resource) => {
    expect(match(method, target)).toMatchObject({ kind: 'matched', action, resource });
  });

  it('takes the first route in table order and answers the raw path for forwarding', () => {
    const m = match('GET', '/rules/edge%2D1?a=b');
    expect(m).toMatchObject({ kind: 'matched', resource: 'firewall/edge-1', path: '/rules/edge%2D1' });
  });

  it('decodes parameters (UTF-8 percent-encoding)', () => {
    expect(match('GET', '/rules/edge%20%C3%A9')).toMatchObject({
      kind: 'matched',
      params: { edge: 'edge é' },
      resource: 'firewall/edge é',
    });
  });

  it.each([
    ['an unknown path', 'GET', '/admin'],
    ['a method the route does not name', 'PUT', '/rules/edge-1'],
    ['HEAD where only GET is named', 'HEAD', '/rules/edge-1'],
    ['a missing parameter', 'GET', '/rules'],
    ['an empty parameter (trailing /)', 'GET', '/rules/'],
    ['an extra segment', 'GET', '/rules/edge-1/extra'],
    ['a trailing / the template lacks', 'GET', '/rules/edge-1/'],
    ['a missing trailing / the template has', 'GET', '/status'],
    ['a wildcard with nothing to take', 'GET', '/files'],
    ['a wildcard ending in /', 'GET', '/files/a/'],
    ['a literal in another case', 'GET', '/Rules/edge-1'],
  ])('does not match %s', (_why, method, target) => {
    expect(match(method, target)).toEqual({ kind: 'no_route' });
  });

  it.each([
    ['an encoded / in a parameter', '/rules/edge-1%2F..%2Fcore'],
    ['an encoded / (lower case)', '/rules/edge-1%2fcore'],
    ['an encoded backslash', '/rules/edge-1%5C..%5Ccore'],
    ['a raw backslash', '/rules/edge-1\\..\\core'],
    ['a .. segment', '/rules/../admin'],
    ['a . segment', '/rules/./edge-1'],
    ['an encoded .. parameter', '/rules/%2e%2e'],
    ['an encoded . parameter', '/rules/%2E'],
    ['a mixed-encoding .. segment', '/files/a/.%2e/b'],
    ['a .. inside the wildcard', '/files/a/../../etc/passwd'],
    ['an empty segment', '/rules//edge-1'],
    ['an encoded NUL', '/rules/edge-1%00'],
    ['an encoded line feed', '/rules/edge-1%0A'],
    ['an encoded C1 control', '/rules/edge-1%C2%85'],
    ['a malformed percent-encoding', '/rules/edge-1%zz'],
    ['a truncated percent-encoding', '/rules/edge-1%4'],
    ['a percent-encoding that is not UTF-8', '/rules/edge-%C3%28'],
    ['a raw space', '/rules/edge 1'],
    ['a raw non-ASCII character', '/rules/edgé'],
    ['a raw double quote', '/rules/"edge"'],
    ['an absolute-form target', 'http://evil.example/rules/edge-1'],
    ['an asterisk-form target', '*'],
    ['an empty target', ''],
  ])('refuses %s, whatever the route', (_why, target) => {
    const m = match('GET', target);
    expect(m.kind).toBe('refused');
    // Refused before any route is tried: the same answer for a method no route names.
    expect(matchRoute(table, 'PUT', target).kind).toBe('refused');
  });

  it('never lets a parameter hold /, \\, . or .. (property over hostile segments)', () => {
    const hostile = ['%2F', '%2f', '%5C', '%5c', '.', '..', '%2e', '%2E%2e', '.%2E', '%252F'];
    for (const h of hostile) {
      for (const target of [`/rules/${h}`, `/rules/a${h}b`, `/rules/edge-1/${h}`, `/files/${h}/x`]) {
        const m = match('DELETE', target);
        if (m.kind !== 'matched') continue;
        for (const value of Object.values(m.params)) {
          for (const segment of value.split('/')) {
            expect(segment, target).not.toBe('.');
            expect(segment, target).not.toBe('..');
            expect(segment.includes('\\'), target).toBe(false);
          }
          if (!('*' in m.params)) expect(value.includes('/'), target).toBe(false);
        }
      }
    }
    // %252F is a literal "%2F" once decoded: harmless text, kept as it is.
    expect(match('GET', '/rules/a%252Fb')).toMatchObject({ kind: 'matched', resource: 'firewall/a%2Fb' });
  });

  it('fills the resource template once: a parameter holding {…} is not expanded again', () => {
    expect(match('GET', '/rules/%7Bedge%7D')).toMatchObject({ kind: 'matched', resource: 'firewall/{edge}' });
  });
});

describe('parseRequestPath', () => {
  it('keeps the trailing empty segment of a trailing /', () => {
    expect(parseRequestPath('/a/b/?q')).toEqual({ ok: true, path: '/a/b/', segments: ['a', 'b', ''] });
    expect(parseRequestPath('/')).toEqual({ ok: true, path: '/', segments: [''] });
  });
});

describe('route templates', () => {
  const rule = (path: string, resource = 'r') => ({ method: 'GET' as const, path, action: 'a:b', resource });

  it.each([
    ['no leading /', rule('rules/:edge'), 'path', 'must begin with /'],
    ['a query', rule('/rules?x=1'), 'path', 'must not hold ? or #'],
    ['* in the middle', rule('/files/*/x'), 'path', '* may only be the last segment'],
    ['a parameter without a name', rule('/rules/:'), 'path', 'must be : and a name'],
    ['a parameter named twice', rule('/a/:x/:x'), 'path', ':x appears twice'],
    ['an empty segment', rule('/a//b'), 'path', 'empty segment'],
    ['a dot segment', rule('/a/../b'), 'path', '. or .. segments'],
    ['text mixed with :', rule('/a/x:y'), 'path', 'mixes text'],
    ['text mixed with *', rule('/a/x*'), 'path', 'mixes text'],
    ['a character that needs encoding', rule('/a b'), 'path', 'must be encoded'],
    ['a percent-encoding', rule('/a%20b'), 'path', 'must be encoded'],
    [
      'an unknown parameter',
      rule('/rules/:edge', 'firewall/{id}'),
      'resource',
      '{id} is not a parameter of the path (:edge)',
    ],
    [
      '{*} without a wildcard',
      rule('/rules/:edge', 'files/{*}'),
      'resource',
      '{*} needs a path that ends with *',
    ],
    ['an unbalanced brace', rule('/rules/:edge', 'firewall/{edge'), 'resource', 'unbalanced'],
    ['an empty resource', rule('/rules/:edge', ''), 'resource', 'is empty'],
  ])('refuses %s, naming the field', (_why, r, field, message) => {
    expect(() => compileRoute(r)).toThrow(
      expect.objectContaining({ field, message: expect.stringContaining(message) }),
    );
  });
});
