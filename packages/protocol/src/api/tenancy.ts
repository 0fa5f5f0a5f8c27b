import { type Static, Type } from '@sinclair/typebox';
import { Name, NullableTimestamp, Strict, Timestamp } from './common.js';
import { PrincipalView, PublicJwk, TenantView } from './records.js';

/**
 * The MSP operating model: a provider tenant's customers, its relationships with them, and
 * its operators' seats in them (`/v1/customers`, `/v1/relationships`, `/v1/seats`).
 */

/** The body of `POST /v1/customers`: the customer tenant and its first admin's public key. */
export const NewCustomerBody = Type.Object(
  {
    name: Name,
    display_name: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    time_zone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    admin: Type.Object({ name: Name, key: PublicJwk }, Strict),
  },
  Strict,
);
export type NewCustomerBody = Static<typeof NewCustomerBody>;

export const CustomerView = Type.Object({ tenant: TenantView, admin: PrincipalView });
export type CustomerView = Static<typeof CustomerView>;
export const CustomerList = Type.Object({ customers: Type.Array(TenantView) });
export type CustomerList = Static<typeof CustomerList>;

const Names = Type.Array(Name, { minItems: 1, maxItems: 32 });
/**
 * Approvals each request made under the relationship needs, N of M per side: `customer` of the
 * customer's own approvers (as its privilege names them; the privilege's own count still
 * holds), `provider` of the members of the provider's `provider_approvers` groups, each through
 * their seat. Each side 0 to 5, at least one approval in all; `customer` defaults to 1 and
 * `provider` to 0.
 */
const Approvals = Type.Object(
  {
    customer: Type.Optional(Type.Integer({ minimum: 0, maximum: 5 })),
    provider: Type.Optional(Type.Integer({ minimum: 0, maximum: 5 })),
    provider_approvers: Type.Optional(Type.Array(Name, { maxItems: 32 })),
  },
  { ...Strict, minProperties: 1 },
);

/** The body of `POST /v1/relationships` (a provider admin proposes). */
export const NewRelationshipBody = Type.Object(
  {
    customer: Name,
    name: Name,
    /** Group names in the provider tenant. */
    groups: Names,
    /** Privilege names in the customer tenant. */
    privileges: Names,
    approvals: Type.Optional(Approvals),
    starts_at: Type.Optional(Timestamp),
    ends_at: Timestamp,
  },
  Strict,
);
export type NewRelationshipBody = Static<typeof NewRelationshipBody>;

/** The body of `PATCH /v1/relationships/:id`: narrowing only (either side's admin). */
export const RelationshipChangesBody = Type.Object(
  {
    groups: Type.Optional(Names),
    privileges: Type.Optional(Names),
    ends_at: Type.Optional(Timestamp),
    approvals: Type.Optional(Approvals),
  },
  { ...Strict, minProperties: 1 },
);
export type RelationshipChangesBody = Static<typeof RelationshipChangesBody>;

export const RelationshipState = Type.Union([
  Type.Literal('proposed'),
  Type.Literal('active'),
  Type.Literal('ended'),
]);

export const RelationshipView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  provider: Type.String(),
  customer: Type.String(),
  /** Which side the caller's tenant is on. */
  side: Type.Union([Type.Literal('provider'), Type.Literal('customer')]),
  state: RelationshipState,
  groups: Type.Array(Type.String()),
  privileges: Type.Array(Type.String()),
  approvals: Type.Object({
    customer: Type.Integer(),
    provider: Type.Integer(),
    /** The provider's groups whose members approve on its side. */
    provider_approvers: Type.Array(Type.String()),
  }),
  starts_at: NullableTimestamp,
  ends_at: Timestamp,
  proposed_at: Timestamp,
  accepted_at: NullableTimestamp,
  ended_at: NullableTimestamp,
  end_reason: Type.Union([Type.String(), Type.Null()]),
});
export type RelationshipView = Static<typeof RelationshipView>;
export const RelationshipList = Type.Object({ relationships: Type.Array(RelationshipView) });
export type RelationshipList = Static<typeof RelationshipList>;
export const RelationshipQuery = Type.Object({ state: Type.Optional(RelationshipState) }, Strict);
export type RelationshipQuery = Static<typeof RelationshipQuery>;

/** What ending or narrowing a relationship did. */
export const RelationshipOutcome = Type.Object({
  relationship: RelationshipView,
  sessions_ended: Type.Integer(),
  requests_cancelled: Type.Integer(),
});
export type RelationshipOutcome = Static<typeof RelationshipOutcome>;

/** `GET /v1/seats`: the customers an operator may ask in, and what for. */
export const EligibleCustomerList = Type.Object({
  customers: Type.Array(
    Type.Object({
      name: Type.String(),
      display_name: Type.String(),
      privileges: Type.Array(
        Type.Object({ name: Type.String(), relationship: Type.String(), ends_at: Timestamp }),
      ),
    }),
  ),
});
export type EligibleCustomerList = Static<typeof EligibleCustomerList>;

/** The body of `POST /v1/seats`. */
export const TakeSeatBody = Type.Object({ customer: Name }, Strict);
export type TakeSeatBody = Static<typeof TakeSeatBody>;

/** An operator's seat: the tenant and principal to authenticate as there, with their own key. */
export const SeatView = Type.Object({
  customer: Type.String(),
  tenant: Type.String(),
  principal: PrincipalView,
});
export type SeatView = Static<typeof SeatView>;

/** `GET /v1/customers/:name/activity`: the customer's name. */
export const CustomerParams = Type.Object({ name: Name }, Strict);
export type CustomerParams = Static<typeof CustomerParams>;
/** Paging of `GET /v1/customers/:name/activity`: records after sequence `after`, at most `limit`. */
export const ActivityQuery = Type.Object(
  {
    after: Type.Optional(Type.Integer({ minimum: 0 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  Strict,
);
export type ActivityQuery = Static<typeof ActivityQuery>;
