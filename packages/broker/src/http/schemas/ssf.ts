import { Type } from '@sinclair/typebox';
import { StreamId, Strict } from '@tether-broker/protocol/api';
import { STREAM_LIMITS } from '../../domain/ssf-stream.js';
import { DELIVERY_METHODS, STREAM_STATUSES } from '../../domain/ssf-vocabulary.js';

/**
 * The SSF transmitter's request bodies that are bound to the broker's limits and vocabulary
 * (OpenID Shared Signals Framework 1.0). The answers, queries and the poll (RFC 8936) live in
 * `@tether-broker/protocol`.
 */

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

export const StatusBody = Type.Object(
  { stream_id: StreamId, status: Status, reason: Type.Optional(Type.String({ maxLength: 256 })) },
  Strict,
);

export const VerifyBody = Type.Object(
  { stream_id: StreamId, state: Type.Optional(Type.String({ maxLength: STREAM_LIMITS.stateLength })) },
  Strict,
);
