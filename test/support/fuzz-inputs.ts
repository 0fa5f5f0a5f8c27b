/**
 * Malformed-input generators for the API fuzz test (test/api/fuzz-suite.ts, run by fuzz.sqlite.test.ts and fuzz.postgres.test.ts).
 *
 * Routes are read from the running app (its route tree and its OpenAPI document), so a route
 * added later is fuzzed without touching this file. Every generated case carries one
 * "lever": a part of the request that is invalid by construction. The validity oracle
 * {@link mightAccept} is the broker's own validator (Fastify's Ajv compiler with the broker's
 * options): a candidate it accepts is discarded, so a case that reaches the broker is malformed
 * for certain, and any 2xx is a real finding.
 */
import AjvCompiler from '@fastify/ajv-compiler';
import fc from 'fast-check';
import { AJV_CUSTOM_OPTIONS } from '../../packages/broker/src/http/validation.js';

export interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  patternProperties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  enum?: unknown[];
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
}

export interface ParamSpec {
  name: string;
  schema: JsonSchema;
}

export interface RouteSpec {
  method: string;
  /** OpenAPI form: `/v1/groups/{ref}`. */
  path: string;
  params: ParamSpec[];
  /** The declared query string, as one object schema. */
  query: JsonSchema;
  /** The declared body, if the route takes one. */
  body: { mediaType: string; schema: JsonSchema } | undefined;
  /** Behind the `/v1` bearer-token hook. */
  authenticated: boolean;
  /** Answers RFC 6749 error JSON instead of problem+json. */
  oauth: boolean;
  /** Not in the OpenAPI document (only the route tree knows it). */
  hidden: boolean;
}

interface OpenApiParameter {
  in: string;
  name: string;
  schema: JsonSchema;
}
interface OpenApiOperation {
  parameters?: OpenApiParameter[];
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
}
export interface OpenApiDocument {
  paths: Record<string, Record<string, OpenApiOperation>>;
}

/** Methods Fastify reads a request body for (it ignores the body of GET and HEAD). */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** `app.printRoutes({ commonPrefix: false })` → one `{method, path}` per route (HEAD left out). */
export function parseRouteTree(printed: string): { method: string; path: string }[] {
  const routes: { method: string; path: string }[] = [];
  const stack: string[] = [];
  for (const line of printed.split('\n')) {
    const m = /^((?:│ {3}| {4})*)[├└]── (.+?)(?: \(([^)]*)\))?$/.exec(line);
    if (!m) continue;
    const depth = (m[1] ?? '').length / 4;
    stack.length = depth;
    stack.push(m[2] ?? '');
    const path = stack.join('').replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    for (const method of (m[3] ?? '').split(',').map((s) => s.trim())) {
      if (method && method !== 'HEAD') routes.push({ method, path });
    }
  }
  return routes;
}

/** Joins the route tree (every route) with the OpenAPI document (schemas, where documented). */
export function routeSpecs(printed: string, doc: OpenApiDocument): RouteSpec[] {
  return parseRouteTree(printed).map(({ method, path }) => {
    const op = doc.paths[path]?.[method.toLowerCase()];
    const parameters = op?.parameters ?? [];
    const pathParams = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] ?? '');
    const params = pathParams.map((name) => ({
      name,
      schema: parameters.find((p) => p.in === 'path' && p.name === name)?.schema ?? {},
    }));
    const queryParams = parameters.filter((p) => p.in === 'query');
    const oauth = path.startsWith('/oauth/');
    const query: JsonSchema = {
      type: 'object',
      properties: Object.fromEntries(queryParams.map((p) => [p.name, p.schema])),
      // RFC 6749 §3.2: the token endpoint ignores unrecognised parameters; every other
      // route refuses an unknown query key.
      additionalProperties: oauth,
    };
    const content = op?.requestBody?.content ?? {};
    const mediaType = Object.keys(content)[0];
    const bodySchema = mediaType ? content[mediaType]?.schema : undefined;
    return {
      method,
      path,
      params,
      query,
      body: mediaType && bodySchema ? { mediaType, schema: bodySchema } : undefined,
      authenticated: path.startsWith('/v1/'),
      oauth,
      hidden: op === undefined,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// The oracle: does the broker's own validator accept this value? It is the validator Fastify
// builds for every route (`@fastify/ajv-compiler`, the same module instance) with the broker's
// options (AJV_CUSTOM_OPTIONS), not a re-implementation of its rules: a case that reaches the
// broker is refused by its schema for certain, and any 2xx is a real finding.

const compileValidator = AjvCompiler()({}, { customOptions: { ...AJV_CUSTOM_OPTIONS } });
const validators = new WeakMap<JsonSchema, (data: unknown) => boolean>();

function validatorFor(schema: JsonSchema): (data: unknown) => boolean {
  let validate = validators.get(schema);
  if (!validate) {
    validate = compileValidator({ schema, method: 'POST', url: '/fuzz-oracle', httpPart: 'body' }) as (
      data: unknown,
    ) => boolean;
    validators.set(schema, validate);
  }
  return validate;
}

/**
 * Whether the broker's validator accepts `value` for `schema`. Ajv coerces in place (with
 * `coerceTypes: 'array'`), so it judges a copy and the generated case stays as generated.
 */
export function mightAccept(value: unknown, schema: JsonSchema): boolean {
  return validatorFor(schema)(value === undefined ? undefined : structuredClone(value));
}

// ---------------------------------------------------------------------------------------------
// Building blocks

const codePoints = (s: string) => [...s].length;

function regexOf(pattern: string): RegExp | undefined {
  try {
    return new RegExp(pattern, 'u');
  } catch {
    return undefined;
  }
}

/** Replaces lone surrogates, which cannot be percent-encoded. */
export function wellFormed(s: string): string {
  return s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

/** Strings an attacker tries first: traversal, NULs, injection, unicode tricks, sizes. */
export const HOSTILE_STRINGS: readonly string[] = [
  '',
  ' ',
  '.',
  '..',
  '../..',
  '..%2f..%2fetc%2fpasswd',
  '\u0000',
  'a\u0000b',
  '%00',
  "' OR '1'='1",
  "'; DROP TABLE principals; --",
  '" OR 1=1 --',
  '1; SELECT pg_sleep(5)',
  '{"$ne":null}',
  '{"__proto__":{"admin":true}}',
  '__proto__',
  'constructor',
  'prototype',
  '<script>alert(1)</script>',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a Log4Shell probe, meant literally
  '${jndi:ldap://x}',
  '{{7*7}}',
  'Ａｄｍｉｎ',
  'adm\u0131n',
  'o\u0308perators',
  '\u202Eevil',
  '\uFEFFoperators',
  '🔥',
  '\r\nX-Injected: 1',
  'null',
  'undefined',
  'NaN',
  'Infinity',
  '-1',
  '0',
  '1e309',
  '9999999999999999999999999999',
  'true',
  '[]',
  '{}',
  'OPERATORS',
  'operators ',
  ' operators',
  'req_',
  'req_ZZZZZZZZZZZZZZZZZZZZZZZZZZ',
];

const anyString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('a', 'A', '.', '%', 'é', '🔥', 'x_'), fc.integer({ min: 129, max: 3000 }))
      .map(([c, n]) => c.repeat(n)),
  },
);

/**
 * Stands for a JSON number literal that overflows to `Infinity` (`1e309`), which
 * `JSON.stringify` cannot write; {@link toJsonText} and the form encoder put the literal in.
 */
const OVERFLOW = '\u0000overflow';

/** JSON text of a generated value, with {@link OVERFLOW} written as `1e309`. */
export function toJsonText(v: unknown): string {
  return JSON.stringify(v).replaceAll(JSON.stringify(OVERFLOW), '1e309');
}

/** A value that is never of a JSON scalar type (so Ajv cannot coerce it into one). */
const nonScalar = fc.oneof(
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
  fc.array(fc.jsonValue({ maxDepth: 1 }), { minLength: 2, maxLength: 4 }),
);

function repeatedTo(length: number): fc.Arbitrary<string> {
  return fc
    .string({ minLength: 1, maxLength: 8, unit: 'grapheme-ascii' })
    .map((s) => s.repeat(Math.ceil(length / s.length)).slice(0, length));
}

/** A best-effort valid value (used for the parts of a case that are not its lever). */
export function validish(schema: JsonSchema): fc.Arbitrary<unknown> {
  if (schema.anyOf) return fc.oneof(...schema.anyOf.map(validish));
  if (schema.enum) return fc.constantFrom(...schema.enum);
  switch (schema.type) {
    case 'string': {
      if (schema.format === 'date-time')
        return fc
          .date({ min: new Date('2020-01-01'), max: new Date('2030-01-01'), noInvalidDate: true })
          .map((d) => d.toISOString());
      const min = schema.minLength ?? 0;
      const max = Math.min(schema.maxLength ?? 24, 24);
      if (schema.pattern) {
        const re = regexOf(schema.pattern);
        try {
          if (re && !/\(\?[=!<]/.test(schema.pattern))
            return fc
              .stringMatching(re, { size: 'xsmall' })
              .filter((s) => codePoints(s) >= min && codePoints(s) <= (schema.maxLength ?? Infinity));
        } catch {
          // fall through to a plain sample
        }
        return fc.constantFrom('zz-fuzz', 'a1', 'x.y@z');
      }
      return fc.string({ minLength: min, maxLength: Math.max(min, max) });
    }
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -1000, max: schema.maximum ?? 1_000_000 });
    case 'number':
      return fc.double({ min: schema.minimum ?? -1000, max: schema.maximum ?? 1000, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(schema.items ? validish(schema.items) : fc.string({ maxLength: 8 }), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.max(schema.minItems ?? 0, Math.min(schema.maxItems ?? 3, 3)),
      });
    case 'object': {
      const props = schema.properties ?? {};
      const named = fc.record(
        Object.fromEntries(Object.entries(props).map(([k, s]) => [k, validish(s)])) as Record<
          string,
          fc.Arbitrary<unknown>
        >,
        { requiredKeys: (schema.required ?? []).filter((k) => k in props) },
      );
      const extra = schema.additionalProperties;
      if (typeof extra !== 'object') return named;
      return fc
        .tuple(
          named,
          fc.dictionary(fc.stringMatching(/^[a-z_][a-z0-9_]{0,10}$/), validish(extra), { maxKeys: 3 }),
        )
        .map(([a, b]) => ({ ...b, ...a }));
    }
    default:
      return fc.jsonValue({ maxDepth: 1 });
  }
}

/** Whether any JSON value breaks `schema` at all (`{}` accepts everything). */
export function canBeInvalid(schema: JsonSchema): boolean {
  return schema.type !== undefined || schema.anyOf !== undefined || schema.enum !== undefined;
}

/** What the broker sees of a value once it has been sent as JSON (`NaN` arrives as `null`). */
function roundTrip(v: unknown): unknown {
  const text = JSON.stringify(v);
  return text === undefined ? null : JSON.parse(text);
}

/**
 * Values built to break `schema` (a final {@link mightAccept} filter makes sure), as the
 * broker will see them after a JSON round trip. Only for schemas that {@link canBeInvalid}.
 */
export function invalidFor(schema: JsonSchema, depth = 0): fc.Arbitrary<unknown> {
  if (!canBeInvalid(schema)) throw new Error(`every value satisfies ${JSON.stringify(schema)}`);
  const options: fc.Arbitrary<unknown>[] = [];
  if (schema.anyOf || schema.enum) options.push(anyString, nonScalar, fc.integer());
  switch (schema.type) {
    case 'string':
      options.push(nonScalar, anyString);
      if (schema.maxLength !== undefined) options.push(repeatedTo(schema.maxLength + 1));
      break;
    case 'integer':
    case 'number':
      options.push(
        nonScalar,
        anyString,
        fc.double({ noDefaultInfinity: true }).filter((d) => d % 1 !== 0),
        fc.constantFrom(1e300, -1e300, 2 ** 53 + 2, 0.5, -0.5, OVERFLOW),
      );
      if (schema.minimum !== undefined) {
        const min = schema.minimum;
        options.push(fc.nat(1e9).map((d) => min - 1 - d));
      }
      if (schema.maximum !== undefined) {
        const max = schema.maximum;
        options.push(fc.nat(1e9).map((d) => max + 1 + d));
      }
      break;
    case 'boolean':
      options.push(nonScalar, anyString, fc.integer({ min: 2 }));
      break;
    case 'array': {
      options.push(fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }));
      const items = schema.items;
      if (items && canBeInvalid(items) && depth < 3)
        options.push(
          fc
            .tuple(fc.array(validish(items), { maxLength: 2 }), invalidFor(items, depth + 1))
            .map(([ok, bad]) => [...ok, bad]),
        );
      if (schema.maxItems !== undefined)
        options.push(fc.constant(Array.from({ length: schema.maxItems + 1 }, (_, i) => `item-${i}`)));
      if ((schema.minItems ?? 0) > 0) options.push(fc.constant([]));
      break;
    }
    case 'object':
      options.push(invalidObject(schema, depth));
      break;
    default:
      break;
  }
  if (options.length === 0) options.push(fc.jsonValue());
  return fc
    .oneof(...options)
    .map(roundTrip)
    .filter((v) => !mightAccept(v, schema));
}

/** An object schema's key that is not one of its declared properties. */
function unknownKey(schema: JsonSchema): fc.Arbitrary<string> {
  const known = new Set(Object.keys(schema.properties ?? {}));
  return fc
    .oneof(anyString, fc.constantFrom('admin', 'role', 'id', 'tenant_id', 'state', 'is_admin', '$where'))
    .filter((k) => k !== '' && k !== '__proto__' && !known.has(k));
}

function invalidObject(schema: JsonSchema, depth: number): fc.Arbitrary<unknown> {
  const base = validish(schema).map((v) => (typeof v === 'object' && v !== null ? v : {})) as fc.Arbitrary<
    Record<string, unknown>
  >;
  const props = Object.entries(schema.properties ?? {}).filter(([, s]) => canBeInvalid(s));
  const options: fc.Arbitrary<unknown>[] = [
    // Wrong JSON type at this level (null is left to the caller: some routes read it as {}).
    fc.oneof(
      fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
      fc.double(),
      fc.string(),
      fc.boolean(),
    ),
  ];
  if (schema.additionalProperties === false)
    options.push(
      fc
        .tuple(
          base,
          fc.array(fc.tuple(unknownKey(schema), fc.jsonValue({ maxDepth: 2 })), {
            minLength: 1,
            maxLength: 3,
          }),
        )
        .map(([b, extra]) => ({ ...b, ...Object.fromEntries(extra) })),
    );
  if (
    typeof schema.additionalProperties === 'object' &&
    canBeInvalid(schema.additionalProperties) &&
    depth < 3
  ) {
    const valueSchema = schema.additionalProperties;
    options.push(
      fc
        .tuple(fc.string({ minLength: 1, maxLength: 10 }), invalidFor(valueSchema, depth + 1))
        .map(([k, v]) => ({ [k]: v })),
    );
  }
  // Arbitraries are built once, here, not per generated value: building them is the slow part.
  if (props.length > 0 && depth < 3)
    options.push(
      fc.oneof(
        ...props.map(([key, propSchema]) =>
          fc.tuple(base, invalidFor(propSchema, depth + 1)).map(([b, bad]) => ({ ...b, [key]: bad })),
        ),
      ),
    );
  const required = schema.required ?? [];
  if (required.length > 0)
    options.push(
      fc.tuple(base, fc.constantFrom(...required)).map(([b, key]) => {
        const { [key]: _dropped, ...rest } = b;
        return rest;
      }),
    );
  if ((schema.minProperties ?? 0) > 0 || required.length > 0) options.push(fc.constant({}));
  if (schema.maxProperties !== undefined && schema.maxProperties < 2000)
    options.push(
      fc.constant(
        Object.fromEntries(Array.from({ length: schema.maxProperties + 1 }, (_, i) => [`k${i}`, 'v'])),
      ),
    );
  return fc.oneof(...options);
}

// ---------------------------------------------------------------------------------------------
// Whole requests

export type Lever =
  | 'auth'
  | 'path-param'
  | 'path-trick'
  | 'query-unknown-key'
  | 'query-bad-value'
  | 'body-schema'
  | 'body-json-syntax'
  | 'body-text-plain'
  | 'body-form'
  | 'media-type'
  | 'oversize'
  | 'oauth-grant';

export interface FuzzCase {
  lever: Lever;
  method: string;
  url: string;
  headers: Record<string, string>;
  payload: string | undefined;
}

export interface FuzzContext {
  /** A valid bearer token of the highest privilege (so authorisation never masks validation). */
  adminToken: string;
  /** Tokens that must be refused: tampered, foreign-signed. */
  badTokens: string[];
  /** Real, existing targets for a path parameter, by `<resource>/<param>` (e.g. `groups/ref`). */
  targets: Record<string, string[]>;
  bodyLimitBytes: number;
}

function encodeQuery(model: Record<string, string | string[]>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(model))
    for (const one of Array.isArray(v) ? v : [v])
      parts.push(`${encodeURIComponent(wellFormed(k))}=${encodeURIComponent(wellFormed(one))}`);
  return parts.join('&');
}

const asQueryString = (v: unknown): string =>
  v === OVERFLOW ? '1e309' : typeof v === 'string' ? v : (JSON.stringify(v) ?? 'null');

function targetFor(route: RouteSpec, param: ParamSpec, ctx: FuzzContext): fc.Arbitrary<string> {
  const resource = route.path.split('/')[2] ?? '';
  const known = ctx.targets[`${resource}/${param.name}`];
  if (known && known.length > 0) return fc.constantFrom(...known);
  return validish(param.schema).map(asQueryString);
}

/** A path parameter value that the route's schema refuses (or that breaks routing itself). */
function invalidParam(param: ParamSpec): fc.Arbitrary<string> {
  return fc
    .oneof(anyString, invalidFor(param.schema).map(asQueryString))
    .map(wellFormed)
    .filter((s) => !mightAccept(s, param.schema));
}

/** Raw path-segment tricks, inserted unencoded: traversal, NUL, broken escapes, empty, oversize. */
const PATH_TRICKS: readonly string[] = [
  '',
  '.',
  '..',
  '%2e%2e',
  '..%2f..',
  '%00',
  'a%00',
  '%ZZ',
  '%E2%82',
  '%',
  'a/b',
  '%2F',
  ';x',
  'a'.repeat(300),
  '%41'.repeat(200),
];

function buildUrl(route: RouteSpec, values: Record<string, string>, raw: Set<string>, query: string): string {
  const path = route.path.replace(/\{([^}]+)\}/g, (_, name: string) =>
    raw.has(name) ? (values[name] ?? '') : encodeURIComponent(values[name] ?? ''),
  );
  return query ? `${path}?${query}` : path;
}

const JSON_TYPE = 'application/json';

/** Texts that `JSON.parse` refuses, or that Fastify's parser refuses (prototype poisoning). */
const badJson = fc.oneof(
  fc.constantFrom(
    '',
    '{',
    '}',
    '{"a":}',
    "{'a':1}",
    '{"a":1,}',
    '[1,2',
    'NaN',
    'undefined',
    '{"a":1}{"b":2}',
    '{"__proto__":{"x":1}}',
    '{"constructor":{"prototype":{"x":1}}}',
    '// comment\n{}',
    '{"a":"\\x41"}',
    '{"a":01}',
  ),
  fc
    .json({ maxDepth: 2 })
    .chain((j) =>
      fc.nat({ max: Math.max(0, j.length - 1) }).map((cut) => (j.length > 1 ? j.slice(0, cut) : '{')),
    ),
  fc.string({ maxLength: 30 }),
);

function isRefusedJsonText(text: string): boolean {
  try {
    // Fastify's parser (secure-json-parse) skips a leading byte order mark, as RFC 8259 allows.
    const parsed = JSON.parse(text.replace(/^\uFEFF/, ''));
    return /"(__proto__|constructor)"/.test(text) && parsed !== null;
  } catch {
    return true;
  }
}

const UNSUPPORTED_MEDIA_TYPES = [
  'application/xml',
  'text/xml',
  'multipart/form-data; boundary=----fuzz',
  'application/octet-stream',
  'image/png',
  'application/jsonx',
  'application/x-json',
  'text/html',
  'application/graphql',
];

/** The request bodies a route's schema refuses, each with the media type it is sent as. */
function invalidBody(schema: JsonSchema): fc.Arbitrary<Pick<FuzzCase, 'lever' | 'headers' | 'payload'>> {
  // Routes with an optional body read a missing or `null` body as `{}`: count that as "might".
  const refused = (v: unknown) => !mightAccept(v, schema) && !(v === null && mightAccept({}, schema));
  const asJson = fc
    .oneof(
      { weight: 4, arbitrary: invalidFor(schema) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
      { weight: 1, arbitrary: fc.constant(null) },
    )
    .map(roundTrip)
    .filter(refused)
    .map((v) => ({
      lever: 'body-schema' as const,
      headers: { 'content-type': JSON_TYPE },
      payload: toJsonText(v),
    }));
  const asForm = fc
    .oneof(invalidFor(schema), validish(schema))
    .filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v))
    .map((v) => {
      const model: Record<string, string | string[]> = {};
      for (const [k, val] of Object.entries(v)) {
        // An empty list has no `key=value` pair to send: leave it out of the model too.
        if (Array.isArray(val) && val.length === 0) continue;
        model[wellFormed(k)] = Array.isArray(val)
          ? val.map((x) => wellFormed(asQueryString(x)))
          : wellFormed(asQueryString(val));
      }
      return model;
    })
    .filter((model) => Object.keys(model).length > 0 && refused(model))
    .map((model) => ({
      lever: 'body-form' as const,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: encodeQuery(model),
    }));
  const asText = anyString.map((s) => ({
    lever: 'body-text-plain' as const,
    headers: { 'content-type': 'text/plain' },
    payload: s,
  }));
  const syntax = badJson
    .filter(isRefusedJsonText)
    .map((s) => ({ lever: 'body-json-syntax' as const, headers: { 'content-type': JSON_TYPE }, payload: s }));
  return fc.oneof({ weight: 6, arbitrary: asJson }, { weight: 2, arbitrary: asForm }, asText, syntax);
}

/**
 * Every malformed request this route can be sent, weighted so each lever gets a fair share.
 * The parts of a case other than its lever are realistic: real targets, a valid token, a
 * plausible body, so a missing check would show up as a write.
 */
export function malformedRequests(route: RouteSpec, ctx: FuzzContext): fc.Arbitrary<FuzzCase> {
  const paramNames = route.params.map((p) => p.name);
  const realParams: fc.Arbitrary<Record<string, string>> = fc.record(
    Object.fromEntries(route.params.map((p) => [p.name, targetFor(route, p, ctx)])) as Record<
      string,
      fc.Arbitrary<string>
    >,
  );
  const takesBody = BODY_METHODS.has(route.method);
  const bodySchema = route.body?.schema;
  const plausibleBody: fc.Arbitrary<Pick<FuzzCase, 'headers' | 'payload'>> = bodySchema
    ? validish(bodySchema).map((v) =>
        // A body that is a string in its own media type (a pushed SET) is sent as is.
        route.body && typeof v === 'string' && route.body.mediaType !== JSON_TYPE
          ? { headers: { 'content-type': route.body.mediaType }, payload: v }
          : route.body?.mediaType === 'application/x-www-form-urlencoded' &&
              typeof v === 'object' &&
              v !== null
            ? {
                headers: { 'content-type': route.body.mediaType },
                payload: encodeQuery(
                  Object.fromEntries(Object.entries(v).map(([k, x]) => [k, asQueryString(x)])),
                ),
              }
            : { headers: { 'content-type': JSON_TYPE }, payload: JSON.stringify(v) },
      )
    : fc.constant({ headers: {}, payload: undefined });
  const admin = { authorization: `Bearer ${ctx.adminToken}` };
  const declaredQuery = route.query.properties ?? {};
  const queryNames = Object.keys(declaredQuery);
  const plausibleQuery: fc.Arbitrary<Record<string, string>> =
    queryNames.length === 0
      ? fc.constant({})
      : fc.record(
          Object.fromEntries(
            queryNames.map((n) => [n, validish(declaredQuery[n] ?? {}).map(asQueryString)]),
          ) as Record<string, fc.Arbitrary<string>>,
          { requiredKeys: [] },
        );

  const levers: fc.WeightedArbitrary<FuzzCase>[] = [];
  const make = (
    lever: Lever,
    parts: {
      params: Record<string, string>;
      raw?: Set<string>;
      query?: Record<string, string | string[]>;
      headers?: Record<string, string>;
      payload?: string | undefined;
    },
  ): FuzzCase => ({
    lever,
    method: route.method,
    url: buildUrl(route, parts.params, parts.raw ?? new Set(), encodeQuery(parts.query ?? {})),
    headers: { ...(route.authenticated ? admin : {}), ...parts.headers },
    payload: parts.payload,
  });

  if (route.authenticated) {
    const badAuthorization = fc.oneof(
      fc.constant(undefined),
      fc.constantFrom(
        '',
        'Bearer',
        'Bearer ',
        'Basic YWRtaW46YWRtaW4=',
        'Token abc',
        'Bearer a.b.c',
        'Bearer null',
      ),
      fc.constantFrom(...ctx.badTokens).map((t) => `Bearer ${t}`),
      fc.string({ unit: 'grapheme-ascii', maxLength: 200 }).map((s) => `Bearer ${s}`),
      fc.string({ unit: 'grapheme-ascii', maxLength: 50 }),
    );
    levers.push({
      weight: 15,
      arbitrary: fc
        .tuple(realParams, plausibleQuery, plausibleBody, badAuthorization)
        .map(([params, query, body, authorization]) => {
          const c = make('auth', { params, query, ...body });
          delete c.headers.authorization;
          if (authorization !== undefined) c.headers.authorization = authorization;
          return c;
        }),
    });
  }

  const documentedParams = route.params.filter((p) => canBeInvalid(p.schema));
  if (documentedParams.length > 0) {
    levers.push({
      weight: 25,
      arbitrary: fc
        .tuple(
          realParams,
          fc.oneof(...documentedParams.map((p) => invalidParam(p).map((value) => [p.name, value] as const))),
          plausibleQuery,
          plausibleBody,
        )
        .map(([params, [name, value], query, body]) =>
          make('path-param', { params: { ...params, [name]: value }, query, ...body }),
        ),
    });
    levers.push({
      weight: 5,
      arbitrary: fc
        .tuple(realParams, fc.constantFrom(...paramNames), fc.constantFrom(...PATH_TRICKS), plausibleBody)
        .map(([params, name, trick, body]) =>
          make('path-trick', { params: { ...params, [name]: trick }, raw: new Set([name]), ...body }),
        ),
    });
  }

  if (route.query.additionalProperties === false) {
    levers.push({
      weight: 15,
      arbitrary: fc
        .tuple(
          realParams,
          plausibleQuery,
          fc.array(fc.tuple(unknownKey(route.query).map(wellFormed), anyString.map(wellFormed)), {
            minLength: 1,
            maxLength: 3,
          }),
          plausibleBody,
        )
        .filter(([, , extra]) => extra.some(([k]) => !queryNames.includes(k) && k !== ''))
        .map(([params, query, extra, body]) => {
          const merged: Record<string, string | string[]> = { ...query };
          for (const [k, v] of extra) merged[k] = v;
          return make('query-unknown-key', { params, query: merged, ...body });
        }),
    });
  }
  const checkedQueryNames = queryNames.filter((n) => canBeInvalid(declaredQuery[n] ?? {}));
  if (checkedQueryNames.length > 0) {
    const badValue = fc.oneof(
      ...checkedQueryNames.map((name) => {
        const schema = declaredQuery[name] ?? {};
        return fc
          .oneof(
            invalidFor(schema).map(asQueryString).map(wellFormed),
            anyString.map(wellFormed),
            fc.array(validish(schema).map(asQueryString), { minLength: 2, maxLength: 3 }),
          )
          .filter((v) => !mightAccept(v, schema))
          .map((v) => [name, v] as const);
      }),
    );
    levers.push({
      weight: 25,
      arbitrary: fc
        .tuple(realParams, plausibleQuery, badValue, plausibleBody)
        .map(([params, query, [name, value], body]) =>
          make('query-bad-value', { params, query: { ...query, [name]: value }, ...body }),
        ),
    });
  }

  if (takesBody) {
    if (bodySchema) {
      levers.push({
        weight: 40,
        arbitrary: fc
          .tuple(realParams, invalidBody(bodySchema))
          .map(([params, body]) =>
            make(body.lever, { params, headers: body.headers, payload: body.payload }),
          ),
      });
    } else {
      // No body expected: a body Fastify cannot even parse must be refused, not ignored.
      levers.push({
        weight: 10,
        arbitrary: fc
          .tuple(realParams, badJson.filter(isRefusedJsonText))
          .map(([params, payload]) =>
            make('body-json-syntax', { params, headers: { 'content-type': JSON_TYPE }, payload }),
          ),
      });
    }
    levers.push({
      weight: 10,
      arbitrary: fc
        .tuple(
          realParams,
          fc.option(fc.constantFrom(...UNSUPPORTED_MEDIA_TYPES), { nil: undefined }),
          plausibleBody,
        )
        .map(([params, type, body]) =>
          make('media-type', {
            params,
            headers: type === undefined ? {} : { 'content-type': type },
            payload: body.payload && body.payload.length > 0 ? body.payload : '<x>1</x>',
          }),
        ),
    });
    levers.push({
      weight: 2,
      arbitrary: fc
        .tuple(realParams, fc.integer({ min: 1, max: 64 * 1024 }), fc.constantFrom(JSON_TYPE, 'text/plain'))
        .map(([params, extra, type]) =>
          make('oversize', {
            params,
            headers: { 'content-type': type },
            payload: `{"justification":"${'x'.repeat(ctx.bodyLimitBytes + extra)}"}`,
          }),
        ),
    });
  }

  if (route.oauth && bodySchema?.properties?.grant_type) {
    // Schema-valid but refused by the token endpoint itself: wrong grant, no or junk assertion.
    // None of these names a real principal, so none may write (not even a refused-login record).
    const junkAssertion = fc.oneof(
      fc.constant(undefined),
      anyString,
      fc.base64String({ maxLength: 60 }).map((s) => `${s}.${s}.${s}`),
    );
    levers.push({
      weight: 20,
      arbitrary: fc
        .tuple(
          fc.oneof(
            fc.constant('client_credentials'),
            fc.string({ minLength: 1, maxLength: 40 }).filter((g) => g !== 'client_credentials'),
          ),
          fc.option(fc.constantFrom('urn:ietf:params:oauth:client-assertion-type:jwt-bearer', 'x'), {
            nil: undefined,
          }),
          junkAssertion,
        )
        .map(([grant, type, assertion]) => {
          const form: Record<string, string> = { grant_type: wellFormed(grant) };
          if (type !== undefined) form.client_assertion_type = type;
          if (assertion !== undefined) form.client_assertion = wellFormed(assertion);
          return make('oauth-grant', {
            params: {},
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            payload: encodeQuery(form),
          });
        }),
    });
  }

  if (levers.length === 0) throw new Error(`no way to malform ${route.method} ${route.path}`);
  // fast-check prints a counterexample with this: one line, secrets and long payloads cut.
  return fc.oneof(...levers).map((c) => Object.assign(c, { [fc.toStringMethod]: () => describeCase(c) }));
}

/** One line per case for failure reports (long payloads cut short). */
export function describeCase(c: FuzzCase): string {
  const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…(${s.length} chars)` : s);
  const headers = Object.entries(c.headers)
    .map(([k, v]) => `${k}: ${cut(k === 'authorization' ? v.replace(/^(Bearer \S{12})\S+/, '$1…') : v, 80)}`)
    .join('; ');
  return `[${c.lever}] ${c.method} ${cut(c.url, 300)} {${headers}} ${
    c.payload === undefined ? '(no body)' : JSON.stringify(cut(c.payload, 300))
  }`;
}
