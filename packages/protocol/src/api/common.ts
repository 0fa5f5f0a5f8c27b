import { type Static, Type } from '@sinclair/typebox';
import { NAME_PATTERN, PRINCIPAL_KINDS, REQUEST_STATES, ROLES } from '../principals.js';

/**
 * The building blocks of the broker API's wire schemas. Every schema of this folder is the one
 * the broker validates and serialises with, and the one its OpenAPI document is generated from;
 * each exported type is that schema's `Static` type, under the same name.
 */

/** Every object schema refuses unknown keys: a typo must fail loudly, not be ignored. */
export const Strict = { additionalProperties: false } as const;

/** A record's name: lower case, unique in its tenant. */
export const Name = Type.String({
  pattern: NAME_PATTERN,
  minLength: 1,
  maxLength: 128,
  description: 'lower-case name, unique in the tenant',
});
/** A record reference: its id or its name. */
export const Ref = Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._@-]*$' });
export const RefParams = Type.Object({ ref: Ref }, Strict);
export type RefParams = Static<typeof RefParams>;
export const IdParams = Type.Object({ id: Type.String({ pattern: '^[a-z]{3}_[0-9a-z]{26}$' }) }, Strict);
export type IdParams = Static<typeof IdParams>;

export const PrincipalKindSchema = Type.Union(PRINCIPAL_KINDS.map((k) => Type.Literal(k)));
export const RoleSchema = Type.Union(ROLES.map((r) => Type.Literal(r)));
export const RequestStateSchema = Type.Union(REQUEST_STATES.map((s) => Type.Literal(s)));

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

/** An ISO 8601 time, as every answer gives times. */
export const Timestamp = Type.String({ format: 'date-time' });
export const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);

export const EmptyObject = Type.Object({}, Strict);

/** The answer of a change that may find nothing to do (a group membership). */
export const Changed = Type.Object({ changed: Type.Boolean() });
export type Changed = Static<typeof Changed>;

/** The answer of a removal. */
export const Deleted = Type.Object({ deleted: Type.Boolean() });
export type Deleted = Static<typeof Deleted>;
