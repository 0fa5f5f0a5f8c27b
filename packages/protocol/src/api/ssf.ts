import { type Static, Type } from '@sinclair/typebox';
import { Strict } from './common.js';

/**
 * The SSF transmitter's wire shapes (OpenID Shared Signals Framework 1.0, RFC 8936) that hold no
 * broker limit. Member names are the specifications' own, camelCase included where RFC 8936 uses it.
 */

export const StreamId = Type.String({ pattern: '^stm_[0-9a-z]{26}$', description: 'the stream_id' });

/** A stream's configuration (SSF 1.0 §8.1.1). */
export const StreamView = Type.Object({
  stream_id: Type.String(),
  iss: Type.String(),
  aud: Type.Union([Type.String(), Type.Array(Type.String())]),
  events_supported: Type.Array(Type.String()),
  events_requested: Type.Array(Type.String()),
  events_delivered: Type.Array(Type.String()),
  delivery: Type.Object({ method: Type.String(), endpoint_url: Type.String() }),
  description: Type.Optional(Type.String()),
});
export type StreamView = Static<typeof StreamView>;

export const StreamQuery = Type.Object({ stream_id: Type.Optional(StreamId) }, Strict);
export type StreamQuery = Static<typeof StreamQuery>;
export const StreamIdQuery = Type.Object({ stream_id: StreamId }, Strict);
export type StreamIdQuery = Static<typeof StreamIdQuery>;

/** A stream's status (SSF 1.0 §8.1.2). */
export const StatusView = Type.Object({
  stream_id: Type.String(),
  status: Type.String(),
  reason: Type.Optional(Type.String()),
});
export type StatusView = Static<typeof StatusView>;

export const PollParams = Type.Object({ stream_id: StreamId }, Strict);
export type PollParams = Static<typeof PollParams>;

const Jti = Type.String({ minLength: 1, maxLength: 256 });

/** RFC 8936 §2.4: a poll, with acknowledgements and errors for SETs received before. */
export const PollBody = Type.Object(
  {
    maxEvents: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
    returnImmediately: Type.Optional(Type.Boolean()),
    ack: Type.Optional(Type.Array(Jti, { maxItems: 1000 })),
    setErrs: Type.Optional(
      Type.Record(
        Type.String({ minLength: 1, maxLength: 256 }),
        Type.Object(
          {
            err: Type.String({ minLength: 1, maxLength: 256 }),
            description: Type.Optional(Type.String({ maxLength: 1024 })),
          },
          Strict,
        ),
        { maxProperties: 1000 },
      ),
    ),
  },
  Strict,
);
export type PollBody = Static<typeof PollBody>;

/** RFC 8936 §2.5: the SETs of a poll answer, by jti. */
export const PollView = Type.Object({
  sets: Type.Record(Type.String(), Type.String()),
  moreAvailable: Type.Boolean(),
});
export type PollView = Static<typeof PollView>;

/** Transmitter configuration metadata (SSF 1.0 §7.1). */
export const TransmitterMetadata = Type.Object({
  spec_version: Type.String(),
  issuer: Type.String(),
  jwks_uri: Type.String(),
  delivery_methods_supported: Type.Array(Type.String()),
  configuration_endpoint: Type.String(),
  status_endpoint: Type.String(),
  verification_endpoint: Type.String(),
  authorization_schemes: Type.Array(Type.Object({ spec_urn: Type.String() })),
  default_subjects: Type.String(),
});
export type TransmitterMetadata = Static<typeof TransmitterMetadata>;
