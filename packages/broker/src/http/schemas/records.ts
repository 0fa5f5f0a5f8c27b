import { Type } from '@sinclair/typebox';
import { NAME_PATTERN } from '@tether-broker/protocol';
import {
  Attributes,
  Name,
  NullableTimestamp,
  PrincipalKind,
  RequestState,
  Role,
  Strict,
  Timestamp,
} from './common.js';

const PublicJwk = Type.Record(Type.String({ maxLength: 16 }), Type.Unknown(), {
  maxProperties: 16,
  description: 'a public JWK',
});

export const TenantView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  display_name: Type.String(),
  time_zone: Type.String(),
  created_at: Timestamp,
});

export const KeyView = Type.Object({ kid: Type.String(), jwk: PublicJwk, created_at: Timestamp });

export const PrincipalView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: Type.String(),
  enabled: Type.Boolean(),
  roles: Type.Array(Type.String()),
  attributes: Type.Record(Type.String(), Type.String()),
  created_at: Timestamp,
  updated_at: Timestamp,
  keys: Type.Optional(Type.Array(KeyView)),
});

export const NewPrincipalBody = Type.Object(
  {
    name: Name,
    kind: PrincipalKind,
    roles: Type.Optional(Type.Array(Role, { maxItems: 3 })),
    attributes: Type.Optional(Attributes),
    keys: Type.Optional(Type.Array(PublicJwk, { maxItems: 8 })),
  },
  Strict,
);

export const PrincipalChangesBody = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    roles: Type.Optional(Type.Array(Role, { maxItems: 3 })),
    attributes: Type.Optional(Attributes),
  },
  { ...Strict, minProperties: 1 },
);

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
export const KeyParams = Type.Object(
  {
    ref: Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._@-]*$' }),
    kid: Type.String({ pattern: '^[A-Za-z0-9_-]{1,128}$' }),
  },
  Strict,
);

export const GroupView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.String(),
  created_at: Timestamp,
  members: Type.Optional(Type.Array(Type.String())),
});
export const NewGroupBody = Type.Object(
  { name: Name, description: Type.Optional(Type.String({ maxLength: 1024 })) },
  Strict,
);
export const MemberParams = Type.Object(
  {
    ref: Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._@-]*$' }),
    principal: Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._@-]*$' }),
  },
  Strict,
);

const StringList = (what: string) =>
  Type.Array(Type.String({ minLength: 1, maxLength: 512 }), {
    minItems: 1,
    maxItems: 256,
    description: what,
  });

export const ApprovalRuleView = Type.Object({
  approvals: Type.Integer(),
  approvers: Type.Object({ principals: Type.Array(Type.String()), groups: Type.Array(Type.String()) }),
});
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
  },
  Strict,
);
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
  created_at: Timestamp,
  updated_at: Timestamp,
});

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
};
export const NewPrivilegeBody = Type.Object({ name: Name, ...PrivilegeFields }, Strict);
export const PrivilegeChangesBody = Type.Partial(Type.Object(PrivilegeFields, Strict), {
  ...Strict,
  minProperties: 1,
});

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
export const PolicySetView = Type.Object({
  version: Type.Integer(),
  policies: Type.Record(Type.String(), Type.String()),
  created_by: Type.String(),
  created_at: NullableTimestamp,
});
export const PolicySetBody = Type.Object({ policies: PolicyTexts }, Strict);
export const PolicyValidationView = Type.Object({ valid: Type.Boolean(), errors: Type.Array(Type.String()) });
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
export const VersionParams = Type.Object(
  { version: Type.Integer({ minimum: 1, maximum: 2147483647 }) },
  Strict,
);

export const ReviewView = Type.Object({
  reviewer: Type.String(),
  decision: Type.String(),
  comment: Type.String(),
  policies: Type.Array(Type.String()),
  at: Timestamp,
});

export const RequestView = Type.Object({
  id: Type.String(),
  kind: Type.String({ description: 'access (a new session) | extension (more time for a live session)' }),
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
export const ReviewBody = Type.Object({ comment: Type.Optional(Type.String({ maxLength: 2048 })) }, Strict);
export const CancelBody = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 2048 })) }, Strict);

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
export const AuditVerificationView = Type.Object({
  ok: Type.Boolean(),
  checked: Type.Integer(),
  first_bad: Type.Optional(
    Type.Object({ seq: Type.Integer(), id: Type.String(), fault: Type.String(), message: Type.String() }),
  ),
});
