import { type TSchema, Type } from '@sinclair/typebox';
import { NAME_PATTERN, PRINCIPAL_KINDS, REQUEST_STATES, ROLES } from '@tether-broker/protocol';

/** Every object schema refuses unknown keys: a typo must fail loudly, not be ignored. */
export const Strict = { additionalProperties: false } as const;

export const Name = Type.String({
  pattern: NAME_PATTERN,
  minLength: 1,
  maxLength: 128,
  description: 'lower-case name, unique in the tenant',
});
/** A record reference: its id or its name. */
export const Ref = Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._@-]*$' });
export const RefParams = Type.Object({ ref: Ref }, Strict);
export const IdParams = Type.Object({ id: Type.String({ pattern: '^[a-z]{3}_[0-9a-z]{26}$' }) }, Strict);

export const PrincipalKind = Type.Union(PRINCIPAL_KINDS.map((k) => Type.Literal(k)));
export const Role = Type.Union(ROLES.map((r) => Type.Literal(r)));
export const RequestState = Type.Union(REQUEST_STATES.map((s) => Type.Literal(s)));

export const Attributes = Type.Record(
  Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$' }),
  Type.String({ maxLength: 1024 }),
  {
    maxProperties: 64,
    // TypeBox checks only the keys that match the key pattern; refuse every other key.
    additionalProperties: false,
    description: 'free-form string attributes, visible to Cedar as tags',
  },
);

export const Timestamp = Type.String({ format: 'date-time' });
export const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.String(),
    detail: Type.String(),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(Type.Array(Type.Unknown())),
  },
  { additionalProperties: true, description: 'RFC 9457 problem details with a stable code' },
);

export const OAuthErrorBody = Type.Object({ error: Type.String(), error_description: Type.String() });

/** Error responses every route may give, so the response schema documents them. */
export function withProblems<T extends Record<number, TSchema>>(
  ok: T,
): T & Record<400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 500 | 503, typeof Problem> {
  return {
    ...ok,
    400: Problem,
    401: Problem,
    403: Problem,
    404: Problem,
    409: Problem,
    413: Problem,
    415: Problem,
    422: Problem,
    500: Problem,
    503: Problem,
  };
}

export const EmptyObject = Type.Object({}, Strict);
export const Changed = Type.Object({ changed: Type.Boolean() });
export const Deleted = Type.Object({ deleted: Type.Boolean() });

/**
 * For routes whose body is optional: a POST with no body at all (`curl -X POST`) reads as `{}`,
 * so it is validated like any other body instead of failing as "not an object".
 */
export async function emptyBodyAsObject(request: { body: unknown }): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}
