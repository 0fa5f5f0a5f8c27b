import { type Static, Type } from '@sinclair/typebox';
import { NAME_PATTERN } from '../principals.js';
import {
  Attributes,
  Name,
  NullableTimestamp,
  PrincipalKindSchema as PrincipalKind,
  RequestStateSchema as RequestState,
  RoleSchema as Role,
  Strict,
  Timestamp,
} from './common.js';

/** The records of a tenant as the broker API answers and accepts them: snake_case, ISO times. */

export const PublicJwk = Type.Record(Type.String({ maxLength: 16 }), Type.Unknown(), {
  maxProperties: 16,
  description: 'a public JWK',
});

/** A tenant (`GET /v1/tenants/:id`, and in `GET /v1/me`). */
export const TenantView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  display_name: Type.String(),
  time_zone: Type.String(),
  created_at: Timestamp,
  /** `standalone`, `provider` (an MSP) or `customer` (one of a provider's customers). */
  kind: Type.Union([Type.Literal('standalone'), Type.Literal('provider'), Type.Literal('customer')]),
});
export type TenantView = Static<typeof TenantView>;
export const TenantList = Type.Object({ tenants: Type.Array(TenantView) });
export type TenantList = Static<typeof TenantList>;

/** `POST /v1/tenant/cutoff`: revoke every token of the caller's tenant issued until now. */
export const TenantCutoffBody = Type.Object(
  {
    reason: Type.String({
      minLength: 1,
      maxLength: 200,
      // Something to read in the audit trail, not only blanks.
      pattern: '\\S',
      description: 'why, for the audit trail',
    }),
    end_sessions: Type.Optional(
      Type.Boolean({ description: 'also end every live session of the tenant (default false)' }),
    ),
  },
  Strict,
);
export type TenantCutoffBody = Static<typeof TenantCutoffBody>;

export const TenantCutoffView = Type.Object(
  {
    seq: Type.Integer({ description: "the tenant_cutoff event's position in the revocation log" }),
    before: Type.Integer({ description: 'epoch seconds: tokens issued (iat) before it are refused' }),
    ended_sessions: Type.Array(Type.String(), { description: 'the sessions the cut-off ended' }),
  },
  Strict,
);
export type TenantCutoffView = Static<typeof TenantCutoffView>;

/** One of a principal's public keys (`POST /v1/principals/:ref/keys`). */
export const KeyView = Type.Object({ kid: Type.String(), jwk: PublicJwk, created_at: Timestamp });
export type KeyView = Static<typeof KeyView>;

/**
 * A principal's contract window (a contractor's engagement): outside it the principal may not
 * request or hold a session, and no session of it lasts past `ends_at`. Null: no bound that side.
 */
export const ContractView = Type.Object({ starts_at: NullableTimestamp, ends_at: NullableTimestamp });
export type ContractView = Static<typeof ContractView>;

/** The `contract` of `POST /v1/principals`: RFC 3339 times; at least one side. */
export const NewContract = Type.Object(
  { starts_at: Type.Optional(Timestamp), ends_at: Type.Optional(Timestamp) },
  { ...Strict, minProperties: 1 },
);
export type NewContract = Static<typeof NewContract>;

/**
 * The `contract` of `PATCH /v1/principals/:ref`: a side given replaces it (null removes that
 * bound), a side left out is kept; `contract: null` removes the window.
 */
export const ContractChanges = Type.Union([
  Type.Object(
    { starts_at: Type.Optional(NullableTimestamp), ends_at: Type.Optional(NullableTimestamp) },
    { ...Strict, minProperties: 1 },
  ),
  Type.Null(),
]);
export type ContractChanges = Static<typeof ContractChanges>;

/** A principal (`/v1/principals`); `keys` only where one principal is shown; `contract` only when it has one. */
export const PrincipalView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: Type.String(),
  enabled: Type.Boolean(),
  roles: Type.Array(Type.String()),
  attributes: Type.Record(Type.String(), Type.String()),
  created_at: Timestamp,
  updated_at: Timestamp,
  contract: Type.Optional(ContractView),
  keys: Type.Optional(Type.Array(KeyView)),
});
export type PrincipalView = Static<typeof PrincipalView>;
export const PrincipalList = Type.Object({ principals: Type.Array(PrincipalView) });
export type PrincipalList = Static<typeof PrincipalList>;
/** `GET /v1/me`: who the caller is, and in which tenant. */
export const MeView = Type.Object({ principal: PrincipalView, tenant: TenantView });
export type MeView = Static<typeof MeView>;

/** The body of `POST /v1/principals`. */
export const NewPrincipalBody = Type.Object(
  {
    name: Name,
    kind: PrincipalKind,
    roles: Type.Optional(Type.Array(Role, { maxItems: 3 })),
    attributes: Type.Optional(Attributes),
    keys: Type.Optional(Type.Array(PublicJwk, { maxItems: 8 })),
    contract: Type.Optional(NewContract),
  },
  Strict,
);
export type NewPrincipalBody = Static<typeof NewPrincipalBody>;

/** The body of `PATCH /v1/principals/:ref`: at least one change. */
export const PrincipalChangesBody = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    roles: Type.Optional(Type.Array(Role, { maxItems: 3 })),
    attributes: Type.Optional(Attributes),
    contract: Type.Optional(ContractChanges),
  },
  { ...Strict, minProperties: 1 },
);
export type PrincipalChangesBody = Static<typeof PrincipalChangesBody>;

/** The body of `POST /v1/principals/:ref/keys`. */
export const NewKeyBody = Type.Object(
  {
    jwk: PublicJwk,
    proof: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 4096,
        description:
          "a tether-key-proof+jwt signed by one of the principal's registered keys; required when a non-admin adds a key to itself",
      }),
    ),
  },
  Strict,
);
export type NewKeyBody = Static<typeof NewKeyBody>;
export const KeyParams = Type.Object(
  {
    ref: Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._@-]*$' }),
    kid: Type.String({ pattern: '^[A-Za-z0-9_-]{1,128}$' }),
  },
  Strict,
);
export type KeyParams = Static<typeof KeyParams>;

/** A group (`/v1/groups`); `members` only where one group is shown. */
export const GroupView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.String(),
  created_at: Timestamp,
  members: Type.Optional(Type.Array(Type.String())),
});
export type GroupView = Static<typeof GroupView>;
export const GroupList = Type.Object({ groups: Type.Array(GroupView) });
export type GroupList = Static<typeof GroupList>;
/** The body of `POST /v1/groups`. */
export const NewGroupBody = Type.Object(
  { name: Name, description: Type.Optional(Type.String({ maxLength: 1024 })) },
  Strict,
);
export type NewGroupBody = Static<typeof NewGroupBody>;
export const MemberParams = Type.Object(
  {
    ref: Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._@-]*$' }),
    principal: Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._@-]*$' }),
  },
  Strict,
);
export type MemberParams = Static<typeof MemberParams>;

const StringList = (what: string) =>
  Type.Array(Type.String({ minLength: 1, maxLength: 512 }), {
    minItems: 1,
    maxItems: 256,
    description: what,
  });

/** A privilege's approval rule: how many approvals, from whom. */
export const ApprovalRuleView = Type.Object({
  approvals: Type.Integer(),
  approvers: Type.Object({ principals: Type.Array(Type.String()), groups: Type.Array(Type.String()) }),
  fresh_verification: Type.Optional(
    Type.Integer({ description: 'seconds: approvals need a passkey verification this recent (console)' }),
  ),
});
export type ApprovalRuleView = Static<typeof ApprovalRuleView>;
export const ApprovalRuleBody = Type.Object(
  {
    approvals: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 })),
    approvers: Type.Optional(
      Type.Object(
        {
          principals: Type.Optional(
            Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 64 }),
          ),
          groups: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 64 })),
        },
        Strict,
      ),
    ),
    fresh_verification: Type.Optional(
      Type.Union([Type.Integer({ minimum: 30, maximum: 3600 }), Type.Null()], {
        description: 'seconds: approvals need a passkey verification this recent (console); null removes it',
      }),
    ),
  },
  Strict,
);
export type ApprovalRuleBody = Static<typeof ApprovalRuleBody>;
export const TicketRuleBody = Type.Object(
  {
    required: Type.Boolean(),
    pattern: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    source: Type.Optional(
      Type.String({
        pattern: NAME_PATTERN,
        maxLength: 128,
        description: 'the ticket must be in the register, reported by this webhook source',
      }),
    ),
    open: Type.Optional(Type.Boolean({ description: 'the ticket must be in the register and open' })),
    assigned: Type.Optional(
      Type.Boolean({ description: 'the ticket must be in the register and assigned to the requester' }),
    ),
  },
  Strict,
);
export type TicketRuleBody = Static<typeof TicketRuleBody>;

/** A privilege (`/v1/privileges`): what it grants, for how long, under which rules. Durations in seconds. */
/** Whether a privilege's sessions must run recorded, and what is recorded. */
export const RecordingMode = Type.Union(
  [Type.Literal('none'), Type.Literal('output'), Type.Literal('input_and_output')],
  {
    description:
      'none; output: the session must run recorded (terminal output and resizes) or it ends; input_and_output: keystrokes too',
  },
);
export type RecordingMode = Static<typeof RecordingMode>;

export const PrivilegeView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.String(),
  actions: Type.Array(Type.String()),
  resources: Type.Array(Type.String()),
  audiences: Type.Array(Type.String()),
  max_duration: Type.Integer({ description: 'seconds' }),
  token_ttl: Type.Integer({ description: 'seconds' }),
  idle_timeout: Type.Union([Type.Integer(), Type.Null()], {
    description: 'seconds without activity before a session ends (idle); null: none',
  }),
  approval: ApprovalRuleView,
  ticket: Type.Object({
    required: Type.Boolean(),
    pattern: Type.Optional(Type.String()),
    source: Type.Optional(Type.String()),
    open: Type.Optional(Type.Boolean()),
    assigned: Type.Optional(Type.Boolean()),
  }),
  binding: Type.Object({ method: Type.String() }),
  attributes: Type.Record(Type.String(), Type.String()),
  connectors: Type.Array(Type.String(), {
    description: "the tenant's connectors each session gets a downstream credential from",
  }),
  recording: RecordingMode,
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type PrivilegeView = Static<typeof PrivilegeView>;
export const PrivilegeList = Type.Object({ privileges: Type.Array(PrivilegeView) });
export type PrivilegeList = Static<typeof PrivilegeList>;
/**
 * The query of `GET /v1/privileges`. `eligible=true` keeps only the privileges the caller's
 * tenant policies would let the caller request (the Cedar `request` action, asked without a
 * ticket, with the default duration and an empty reason).
 */
export const PrivilegeQuery = Type.Object({ eligible: Type.Optional(Type.Boolean()) }, Strict);
export type PrivilegeQuery = Static<typeof PrivilegeQuery>;

const PrivilegeFields = {
  description: Type.Optional(Type.String({ maxLength: 2048 })),
  actions: StringList('actions the privilege grants, e.g. firewall:rules.write'),
  resources: StringList('resources (or patterns) it grants them on'),
  audiences: Type.Array(Type.String({ minLength: 1, maxLength: 512 }), {
    minItems: 1,
    maxItems: 32,
    description: 'enforcement points that honour it',
  }),
  max_duration: Type.Optional(Type.Integer({ minimum: 60, maximum: 604800, description: 'seconds' })),
  token_ttl: Type.Optional(Type.Integer({ minimum: 30, maximum: 3600, description: 'seconds' })),
  idle_timeout: Type.Optional(
    Type.Union([Type.Integer({ minimum: 60, maximum: 604800 }), Type.Null()], {
      description:
        'seconds without activity (refresh, allowed decision) before a session ends; at most max_duration; null: none. Sessions keep the value they were activated with',
    }),
  ),
  approval: Type.Optional(ApprovalRuleBody),
  ticket: Type.Optional(TicketRuleBody),
  attributes: Type.Optional(Attributes),
  connectors: Type.Optional(
    Type.Array(Name, {
      maxItems: 4,
      description:
        "names of the tenant's connectors: each session gets a credential from each, destroyed when it ends",
    }),
  ),
  recording: Type.Optional(RecordingMode),
};
/** The body of `POST /v1/privileges`. */
export const NewPrivilegeBody = Type.Object({ name: Name, ...PrivilegeFields }, Strict);
export type NewPrivilegeBody = Static<typeof NewPrivilegeBody>;
/** The body of `PATCH /v1/privileges/:ref`: at least one change. */
export const PrivilegeChangesBody = Type.Partial(Type.Object(PrivilegeFields, Strict), {
  ...Strict,
  minProperties: 1,
});
export type PrivilegeChangesBody = Static<typeof PrivilegeChangesBody>;

export const PolicyTexts = Type.Record(
  Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' }),
  Type.String({ maxLength: 65536 }),
  {
    maxProperties: 1000,
    // TypeBox checks only the keys that match the key pattern; refuse every other key.
    additionalProperties: false,
    description: 'policy id -> Cedar text, one policy per entry',
  },
);
export type PolicyTexts = Static<typeof PolicyTexts>;
/** A version of the Cedar policy set (`GET /v1/policies`); version 0 and `created_at` null: none yet. */
export const PolicySetView = Type.Object({
  version: Type.Integer(),
  policies: Type.Record(Type.String(), Type.String()),
  created_by: Type.String(),
  created_at: NullableTimestamp,
});
export type PolicySetView = Static<typeof PolicySetView>;
/** The body of `PUT /v1/policies` and `POST /v1/policies/validate`. */
export const PolicySetBody = Type.Object({ policies: PolicyTexts }, Strict);
export type PolicySetBody = Static<typeof PolicySetBody>;
/** The answer of `POST /v1/policies/validate`. */
export const PolicyValidationView = Type.Object({ valid: Type.Boolean(), errors: Type.Array(Type.String()) });
export type PolicyValidationView = Static<typeof PolicyValidationView>;
/** The history of the policy set (`GET /v1/policies/versions`). */
export const PolicyVersionsView = Type.Object({
  versions: Type.Array(
    Type.Object({
      version: Type.Integer(),
      created_by: Type.String(),
      created_at: Timestamp,
      policies: Type.Integer(),
    }),
  ),
});
export type PolicyVersionsView = Static<typeof PolicyVersionsView>;
export const VersionParams = Type.Object(
  { version: Type.Integer({ minimum: 1, maximum: 2147483647 }) },
  Strict,
);
export type VersionParams = Static<typeof VersionParams>;

/** One review of a request: an approval or a denial. */
export const ReviewView = Type.Object({
  reviewer: Type.String(),
  decision: Type.String(),
  comment: Type.String(),
  policies: Type.Array(Type.String()),
  at: Timestamp,
});
export type ReviewView = Static<typeof ReviewView>;

/** An access request, or an extension request for a live session (`/v1/requests`). */
export const RequestView = Type.Object({
  id: Type.String(),
  kind: Type.String({
    description:
      'access (a new session) | extension (more time for a live session) | delegation (a sub-session of a live session)',
  }),
  session: Type.Union([Type.String(), Type.Null()], { description: 'extension: the session it extends' }),
  principal: Type.String(),
  privilege: Type.String(),
  ticket: Type.Union([Type.String(), Type.Null()]),
  justification: Type.String(),
  duration: Type.Integer({
    description: 'seconds: the session length asked for, or for an extension the time added',
  }),
  state: Type.String(),
  approvals_required: Type.Integer(),
  created_at: Timestamp,
  expires_at: Timestamp,
  resolved_at: NullableTimestamp,
  resolved_by: Type.Union([Type.String(), Type.Null()]),
  activation_expires_at: NullableTimestamp,
  policies: Type.Array(Type.String()),
  reviews: Type.Optional(Type.Array(ReviewView)),
});
export type RequestView = Static<typeof RequestView>;
export const RequestList = Type.Object({ requests: Type.Array(RequestView) });
export type RequestList = Static<typeof RequestList>;

/** The body of `POST /v1/requests`. */
export const NewRequestBody = Type.Object(
  {
    privilege: Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._@-]*$' }),
    ticket: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._:#/-]*$' }),
    ),
    justification: Type.String({ minLength: 1, maxLength: 2048 }),
    duration: Type.Optional(Type.Integer({ minimum: 60, maximum: 604800, description: 'seconds' })),
  },
  Strict,
);
export type NewRequestBody = Static<typeof NewRequestBody>;
/** The query of `GET /v1/requests`. */
export const RequestQuery = Type.Object(
  {
    state: Type.Optional(RequestState),
    principal: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._@-]*$' }),
    ),
    privilege: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._@-]*$' }),
    ),
    ticket: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  Strict,
);
export type RequestQuery = Static<typeof RequestQuery>;
/** The body of `POST /v1/requests/:id/approve` and `/deny`. */
export const ReviewBody = Type.Object({ comment: Type.Optional(Type.String({ maxLength: 2048 })) }, Strict);
export type ReviewBody = Static<typeof ReviewBody>;
/** The body of `POST /v1/requests/:id/cancel`. */
export const CancelBody = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 2048 })) }, Strict);
export type CancelBody = Static<typeof CancelBody>;

/** One record of the tenant's audit trail, hash-chained to the one before (`GET /v1/audit`). */
export const AuditRecordView = Type.Object({
  seq: Type.Integer(),
  id: Type.String(),
  at: Timestamp,
  actor: Type.String(),
  action: Type.String(),
  target: Type.String(),
  outcome: Type.String(),
  request: Type.Union([Type.String(), Type.Null()]),
  ticket: Type.Union([Type.String(), Type.Null()]),
  principal: Type.Union([Type.String(), Type.Null()]),
  policies: Type.Array(Type.String()),
  details: Type.Record(Type.String(), Type.Unknown()),
  prev_hash: Type.String(),
  hash: Type.String(),
});
export type AuditRecordView = Static<typeof AuditRecordView>;
export const AuditRecordList = Type.Object({ records: Type.Array(AuditRecordView) });
export type AuditRecordList = Static<typeof AuditRecordList>;
/** The query of `GET /v1/audit`. */
export const AuditQuery = Type.Object(
  {
    request: Type.Optional(Type.String({ pattern: '^req_[0-9a-z]{26}$' })),
    session: Type.Optional(
      Type.String({ pattern: '^ses_[0-9a-z]{26}$', description: 'records about this session (its target)' }),
    ),
    ticket: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    principal: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._@-]*$' }),
    ),
    since: Type.Optional(Timestamp),
    until: Type.Optional(Timestamp),
    after: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: Number.MAX_SAFE_INTEGER,
        description: 'only records with a greater sequence number',
      }),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  Strict,
);
export type AuditQuery = Static<typeof AuditQuery>;
/** The answer of `GET /v1/audit/verify`: the chain holds, or where it first breaks. */
export const AuditVerificationView = Type.Object({
  ok: Type.Boolean(),
  checked: Type.Integer(),
  first_bad: Type.Optional(
    Type.Object({ seq: Type.Integer(), id: Type.String(), fault: Type.String(), message: Type.String() }),
  ),
});
export type AuditVerificationView = Static<typeof AuditVerificationView>;
