import { Type } from '@sinclair/typebox';
import { STREAM_LIMITS } from '../../domain/ssf-stream.js';
import { DELIVERY_METHODS, STREAM_STATUSES } from '../../domain/ssf-vocabulary.js';
import { Strict } from './common.js';

/**
 * The SSF transmitter's wire shapes (OpenID Shared Signals Framework 1.0, RFC 8936). Member
 * names are the specifications' own, camelCase included where RFC 8936 uses it.
 */

export const StreamId = Type.String({ pattern: '^stm_[0-9a-z]{26}$', description: 'the stream_id' });

const EventType = Type.String({ minLength: 1, maxLength: 256, description: 'an event type URI' });
const EventTypes = Type.Array(EventType, { maxItems: STREAM_LIMITS.eventsRequested });
const AudValue = Type.String({ minLength: 1, maxLength: 512 });
const Aud = Type.Union([AudValue, Type.Array(AudValue, { minItems: 1, maxItems: STREAM_LIMITS.audValues })]);
const Method = Type.Union(DELIVERY_METHODS.map((m) => Type.Literal(m)));
const Status = Type.Union(STREAM_STATUSES.map((s) => Type.Literal(s)));

export const DeliveryBody = Type.Object(
  {
    method: Method,
    endpoint_url: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
    // Printable ASCII only: it becomes a header line of every push.
    authorization_header: Type.Optional(
      Type.String({ minLength: 1, maxLength: 4096, pattern: '^[\\x20-\\x7e]+$', description: 'write-only' }),
    ),
  },
  Strict,
);

const Description = Type.String({ maxLength: STREAM_LIMITS.descriptionLength });

export const CreateStreamBody = Type.Object(
  {
    events_requested: Type.Optional(EventTypes),
    delivery: Type.Optional(DeliveryBody),
    description: Type.Optional(Description),
    aud: Type.Optional(Aud),
  },
  Strict,
);

export const UpdateStreamBody = Type.Object(
  {
    stream_id: StreamId,
    events_requested: Type.Optional(EventTypes),
    delivery: Type.Optional(DeliveryBody),
    description: Type.Optional(Description),
    // Transmitter-supplied members a receiver may send back (SSF §8.1.1.3): they must match.
    iss: Type.Optional(Type.String({ maxLength: 2048 })),
    aud: Type.Optional(Aud),
    events_supported: Type.Optional(EventTypes),
    events_delivered: Type.Optional(EventTypes),
  },
  Strict,
);

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

export const StreamQuery = Type.Object({ stream_id: Type.Optional(StreamId) }, Strict);
export const StreamIdQuery = Type.Object({ stream_id: StreamId }, Strict);

export const StatusBody = Type.Object(
  { stream_id: StreamId, status: Status, reason: Type.Optional(Type.String({ maxLength: 256 })) },
  Strict,
);

export const StatusView = Type.Object({
  stream_id: Type.String(),
  status: Type.String(),
  reason: Type.Optional(Type.String()),
});

export const VerifyBody = Type.Object(
  { stream_id: StreamId, state: Type.Optional(Type.String({ maxLength: STREAM_LIMITS.stateLength })) },
  Strict,
);

export const PollParams = Type.Object({ stream_id: StreamId }, Strict);

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

export const PollView = Type.Object({
  sets: Type.Record(Type.String(), Type.String()),
  moreAvailable: Type.Boolean(),
});

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
