import { type Static, Type } from '@sinclair/typebox';
import {
  DECISION_BATCH_MAX,
  DECISION_FIELD_MAX,
  type DecisionReport,
  type DecisionReportAnswer,
  PEP_INSTANCE_PATTERN,
  type PepAckAnswer,
  type PepAckRequest,
  type PepAudiencesAnswer,
  type PepAudiencesRequest,
  type SessionReceipt,
} from '../enforcement.js';
import { Ref, Strict, Timestamp } from './common.js';

/** A position in a tenant's revocation log (below 10^15, so exact as a number everywhere). */
const Position = Type.Integer({ minimum: 0, maximum: 999_999_999_999_999 });

export const PepParams = Type.Object({ pep: Ref }, Strict);
export type PepParams = Static<typeof PepParams>;

/** The body of `POST /v1/peps/:pep/ack` (`PepAckRequest`). */
export const PepAckBody = Type.Object(
  {
    applied: Type.Integer({
      minimum: 0,
      maximum: 999_999_999_999_999,
      description: 'the newest log position this PEP has applied',
    }),
    instance: Type.Optional(
      Type.String({
        pattern: PEP_INSTANCE_PATTERN,
        description: 'this PEP process: random per start; receipts wait for every live instance',
      }),
    ),
    leaving: Type.Optional(
      Type.Boolean({ description: 'this instance is stopping: receipts stop waiting for it' }),
    ),
  },
  Strict,
);
export type PepAckBody = Static<typeof PepAckBody>;
/** The answer of `POST /v1/peps/:pep/ack` (`PepAckAnswer`). */
export const PepAckView = Type.Object({ applied: Position, head: Position });
export type PepAckView = Static<typeof PepAckView>;

const Decision = Type.Object(
  {
    // Up to the end of year 9999: every value has an ISO form.
    at: Type.Integer({ minimum: 0, maximum: 253_402_300_799_999, description: 'epoch milliseconds' }),
    allow: Type.Boolean(),
    code: Type.String({ minLength: 1, maxLength: DECISION_FIELD_MAX.code, pattern: '^[a-z0-9_]+$' }),
    action: Type.String({ minLength: 1, maxLength: DECISION_FIELD_MAX.action }),
    resource: Type.String({ minLength: 1, maxLength: DECISION_FIELD_MAX.resource }),
    session: Type.Union([Type.String({ minLength: 1, maxLength: DECISION_FIELD_MAX.session }), Type.Null()]),
    method: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: DECISION_FIELD_MAX.method,
        pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
      }),
    ),
    path: Type.Optional(Type.String({ maxLength: DECISION_FIELD_MAX.path })),
  },
  Strict,
);

/** An audience as privileges name it: a URL or another identifier, without control characters. */
const audience = (description?: string) =>
  Type.String({
    minLength: 1,
    maxLength: 512,
    pattern: '^[^\\u0000-\\u001f\\u007f]+$',
    ...(description === undefined ? {} : { description }),
  });

/** The body of `POST /v1/decisions` (`DecisionReport`). */
export const DecisionReportBody = Type.Object(
  {
    audience: audience('the audience the PEP decided for: one it enforces'),
    decisions: Type.Array(Decision, { minItems: 1, maxItems: DECISION_BATCH_MAX }),
    dropped: Type.Integer({
      minimum: 0,
      maximum: 1_000_000_000,
      description: 'decisions this PEP dropped since its last report',
    }),
  },
  Strict,
);
export type DecisionReportBody = Static<typeof DecisionReportBody>;
/** The answer of `POST /v1/decisions` (`DecisionReportAnswer`). */
export const DecisionReportView = Type.Object({
  recorded: Type.Integer({ minimum: 0 }),
  dropped: Type.Integer({ minimum: 0 }),
});
export type DecisionReportView = Static<typeof DecisionReportView>;

/** The answer of `GET /v1/sessions/:id/receipt` (`SessionReceipt`). */
export const SessionReceiptView = Type.Object({
  session: Type.String(),
  state: Type.Union([Type.Literal('active'), Type.Literal('ended')]),
  ended_at: Type.Union([Timestamp, Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  seq: Type.Union([Position, Type.Null()]),
  enforced: Type.Boolean(),
  peps: Type.Array(
    Type.Object({
      id: Type.String(),
      name: Type.String(),
      applied: Position,
      last_seen_at: Timestamp,
      live: Type.Boolean(),
      enforced_at: Type.Union([Timestamp, Type.Null()]),
      instances: Type.Array(
        Type.Object({
          id: Type.String(),
          applied: Position,
          last_seen_at: Timestamp,
          enforced_at: Type.Union([Timestamp, Type.Null()]),
        }),
      ),
    }),
  ),
  pending: Type.Array(Type.String()),
  credentials: Type.Array(
    Type.Object({
      connector: Type.String(),
      kind: Type.String(),
      username: Type.String(),
      fingerprint: Type.String(),
      minted_at: Timestamp,
      valid_until: Timestamp,
      destroyed_at: Type.Union([Timestamp, Type.Null()]),
      connections_terminated: Type.Union([Type.Integer(), Type.Null()]),
    }),
  ),
  recording: Type.Union(
    [
      Type.Object({
        mode: Type.String(),
        chunks: Type.Integer(),
        bytes: Type.Integer(),
        digest: Type.String({ description: "hex SHA-256 chained over every chunk's SHA-256, in order" }),
        complete: Type.Boolean(),
      }),
      Type.Null(),
    ],
    { description: 'the recording the privilege required, or null: none was required' },
  ),
});
export type SessionReceiptView = Static<typeof SessionReceiptView>;

/** The body of `PUT /v1/peps/:pep/audiences` (`PepAudiencesRequest`). */
export const PepAudiencesBody = Type.Object(
  { audiences: Type.Array(audience(), { maxItems: 100, uniqueItems: true }) },
  Strict,
);
export type PepAudiencesBody = Static<typeof PepAudiencesBody>;
/** The answer of `/v1/peps/:pep/audiences` (`PepAudiencesAnswer`). */
export const PepAudiencesView = Type.Object({
  pep: Type.String(),
  name: Type.String(),
  audiences: Type.Array(Type.String()),
});
export type PepAudiencesView = Static<typeof PepAudiencesView>;

// The wire types the PEP library and the SDK import are these schemas' types: keep them one.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const agree: [
  Same<Static<typeof PepAckBody>, PepAckRequest>,
  Same<Static<typeof PepAckView>, PepAckAnswer>,
  Same<Static<typeof DecisionReportBody>, DecisionReport>,
  Same<Static<typeof DecisionReportView>, DecisionReportAnswer>,
  Same<Static<typeof SessionReceiptView>, SessionReceipt>,
  Same<Static<typeof PepAudiencesBody>, PepAudiencesRequest>,
  Same<Static<typeof PepAudiencesView>, PepAudiencesAnswer>,
] = [true, true, true, true, true, true, true];
void agree;
