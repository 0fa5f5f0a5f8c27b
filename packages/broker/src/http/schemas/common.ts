import type { TSchema } from '@sinclair/typebox';
import { Type } from '@sinclair/typebox';

/**
 * The broker's route-config helpers. The wire schemas themselves (records, sessions, their
 * building blocks) live in `@tether-broker/protocol`, so that the SDK, the CLI and the tests
 * read the same types the routes validate and serialise with.
 */

export { EmptyObject } from '@tether-broker/protocol/api';

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

/**
 * For routes whose body is optional: a POST with no body at all (`curl -X POST`) reads as `{}`,
 * so it is validated like any other body instead of failing as "not an object".
 */
export async function emptyBodyAsObject(request: { body: unknown }): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}
