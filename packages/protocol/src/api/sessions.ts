import { type Static, Type } from '@sinclair/typebox';
import { Ref, Strict, Timestamp } from './common.js';

/** Sessions as the broker API answers them; tokens appear only in the activation answer. */

export const SessionView = Type.Object({
  id: Type.String(),
  request: Type.String(),
  principal: Type.String(),
  privilege: Type.String(),
  ticket: Type.Union([Type.String(), Type.Null()]),
  tenant: Type.String(),
  cnf: Type.Object({ jkt: Type.String() }),
  state: Type.String(),
  end_reason: Type.Union([Type.String(), Type.Null()]),
  ended_by: Type.Union([Type.String(), Type.Null()]),
  activated_at: Timestamp,
  hard_expires_at: Timestamp,
  ended_at: Type.Union([Timestamp, Type.Null()]),
  last_activity_at: Timestamp,
  idle_timeout: Type.Union([Type.Integer(), Type.Null()], {
    description: 'seconds without activity before the session ends (idle), as activated; null: none',
  }),
  authorization_details: Type.Array(
    Type.Object({
      type: Type.String(),
      privilege: Type.String(),
      actions: Type.Array(Type.String()),
      resources: Type.Array(Type.String()),
    }),
  ),
  audiences: Type.Array(Type.String()),
  status: Type.Object({ status_list: Type.Object({ idx: Type.Integer(), uri: Type.String() }) }),
  delegation: Type.Optional(
    Type.Object(
      {
        parent: Type.String({ description: 'the session this sub-session was delegated from' }),
        depth: Type.Integer(),
        act: Type.Unknown({ description: 'RFC 8693 §4.1 act claim: who acts, and for whom before it' }),
        call_budget: Type.Union([Type.Record(Type.String(), Type.Integer()), Type.Null()]),
        calls_made: Type.Record(Type.String(), Type.Integer()),
      },
      { description: 'set on a delegated sub-session' },
    ),
  ),
});
export type SessionView = Static<typeof SessionView>;
export const SessionList = Type.Object({ sessions: Type.Array(SessionView) });
export type SessionList = Static<typeof SessionList>;

/** The answer of `POST /v1/requests/:id/activate`: the session and its first DPoP-bound tokens. */
/**
 * A downstream credential handed to the session's holder, once: its value is not kept in clear
 * anywhere and is never answered again.
 */
export const CredentialView = Type.Object({
  connector: Type.String(),
  kind: Type.String(),
  username: Type.String(),
  secret: Type.String({ description: 'the password (or token): answered once, to the holder' }),
  valid_until: Type.String({ format: 'date-time' }),
});
export type CredentialView = Static<typeof CredentialView>;

/** The answer of `POST /v1/sessions/:id/credentials`: what had not been collected yet. */
export const CollectedCredentialsView = Type.Object({
  credentials: Type.Array(CredentialView),
  /** Connectors still minting (collect again shortly). */
  pending: Type.Array(Type.String()),
});
export type CollectedCredentialsView = Static<typeof CollectedCredentialsView>;

export const ActivationView = Type.Object({
  session: SessionView,
  access_token: Type.String(),
  token_type: Type.Literal('DPoP'),
  expires_in: Type.Integer(),
  refresh_token: Type.String(),
  credentials: Type.Optional(
    Type.Array(CredentialView, {
      description:
        "the session's downstream credentials minted by the time of the answer (the rest: POST /v1/sessions/:id/credentials)",
    }),
  ),
  credentials_pending: Type.Optional(Type.Array(Type.String())),
  recording: Type.Optional(
    Type.Object(
      {
        mode: Type.Union([Type.Literal('output'), Type.Literal('input_and_output')]),
        upload: Type.String({ description: 'where the holder sends each signed chunk (POST)' }),
        lapse_seconds: Type.Integer({
          description:
            'the session ends when no chunk has arrived for this long (send empty chunks while idle)',
        }),
        max_chunk_bytes: Type.Integer(),
      },
      {
        description:
          'present when the privilege requires recording: the session must stream its recording, or it ends',
      },
    ),
  ),
});
export type ActivationView = Static<typeof ActivationView>;

/** The query of `GET /v1/sessions`. */
export const SessionQuery = Type.Object(
  {
    state: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('ended')])),
    principal: Type.Optional(Ref),
    privilege: Type.Optional(Ref),
    ticket: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  Strict,
);
export type SessionQuery = Static<typeof SessionQuery>;

/** A session id in a path. */
export const SessionParams = Type.Object({ id: Type.String({ pattern: '^ses_[0-9a-z]{26}$' }) }, Strict);
export type SessionParams = Static<typeof SessionParams>;
/** The body of `POST /v1/sessions/:id/end`. */
export const EndSessionBody = Type.Object(
  {
    reason: Type.Optional(Type.Union([Type.Literal('completed'), Type.Literal('revoked')])),
    note: Type.Optional(Type.String({ maxLength: 2048 })),
  },
  Strict,
);
export type EndSessionBody = Static<typeof EndSessionBody>;
/** The body of `POST /v1/sessions/revoke`: which live sessions to end. */
export const RevokeSessionsBody = Type.Object(
  {
    principal: Type.Optional(Ref),
    ticket: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    privilege: Type.Optional(Ref),
    note: Type.Optional(Type.String({ maxLength: 2048 })),
  },
  { ...Strict, minProperties: 1 },
);
export type RevokeSessionsBody = Static<typeof RevokeSessionsBody>;
/** The answer of `POST /v1/sessions/revoke`: the ids of the sessions it ended. */
export const RevokedView = Type.Object({ revoked: Type.Array(Type.String()) });
export type RevokedView = Static<typeof RevokedView>;
/** The body of `POST /v1/sessions/:id/extend`. */
export const ExtendSessionBody = Type.Object(
  {
    by: Type.Integer({
      minimum: 60,
      maximum: 604800,
      description:
        "seconds to add to the hard expiry; the session may not become longer than the privilege's max_duration",
    }),
    justification: Type.String({ minLength: 1, maxLength: 2048 }),
  },
  Strict,
);
export type ExtendSessionBody = Static<typeof ExtendSessionBody>;
/** A status list number in a path (`GET /v1/status-lists/:n`). */
export const StatusListParams = Type.Object({ n: Type.Integer({ minimum: 1, maximum: 2147483647 }) }, Strict);
export type StatusListParams = Static<typeof StatusListParams>;

/**
 * The body of `POST /v1/sessions/:id/recording`: one chunk of the session's asciicast v2
 * recording, `data` (complete lines), and `proof`, a compact JWS by the session key (its public
 * JWK in the header; `typ` `tether-recording+jwt`) whose payload names the session, the chunk's
 * position and the SHA-256 of `data`: only the key the session is bound to can add to it.
 */
export const RecordingChunkBody = Type.Object(
  {
    proof: Type.String({ minLength: 1, maxLength: 4096 }),
    data: Type.String({ maxLength: 1024 * 1024 }),
  },
  Strict,
);
export type RecordingChunkBody = Static<typeof RecordingChunkBody>;

/** What the broker holds of a recording after a chunk (or for an auditor). */
export const RecordingSummary = Type.Object({
  session_id: Type.String(),
  mode: Type.Union([Type.Literal('output'), Type.Literal('input_and_output')]),
  chunks: Type.Integer(),
  bytes: Type.Integer(),
  digest: Type.String({ description: "hex SHA-256 chained over every chunk's SHA-256, in order" }),
  complete: Type.Boolean({ description: 'the final chunk has arrived' }),
});
export type RecordingSummary = Static<typeof RecordingSummary>;

/** The answer of `GET /v1/sessions/:id/recording` (auditors and admins). */
export const RecordingView = Type.Object({
  ...RecordingSummary.properties,
  intact: Type.Boolean({
    description:
      'the chunks served chain to the digest recorded as they arrived; false: the store was altered (see audit verify)',
  }),
  cast: Type.String({ description: 'the whole recording, asciicast v2' }),
});
export type RecordingView = Static<typeof RecordingView>;
