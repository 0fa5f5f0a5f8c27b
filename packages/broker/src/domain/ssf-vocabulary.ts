/**
 * The names the SSF transmitter speaks: OpenID Shared Signals Framework 1.0, CAEP 1.0, and the
 * SET delivery RFCs. Kept in one place so the configuration metadata, the stream objects and
 * the SETs themselves cannot disagree.
 */

/** `spec_version` of the transmitter configuration metadata: SSF 1.0 final. */
export const SSF_SPEC_VERSION = '1_0';

/** RFC 8935 push delivery and RFC 8936 poll delivery, as SSF names them in `delivery.method`. */
export const PUSH_METHOD = 'urn:ietf:rfc:8935';
export const POLL_METHOD = 'urn:ietf:rfc:8936';
export const DELIVERY_METHODS = [PUSH_METHOD, POLL_METHOD] as const;
export type DeliveryMethodUri = (typeof DELIVERY_METHODS)[number];

/** How a stream delivers, as stored. */
export type DeliveryMethod = 'push' | 'poll';

export function methodOf(uri: DeliveryMethodUri): DeliveryMethod {
  return uri === PUSH_METHOD ? 'push' : 'poll';
}

export function methodUri(method: DeliveryMethod): DeliveryMethodUri {
  return method === 'push' ? PUSH_METHOD : POLL_METHOD;
}

/** The JOSE `typ` of a Security Event Token (RFC 8417 §2.3), and the media type it travels as. */
export const SET_JWT_TYPE = 'secevent+jwt';
export const SET_MEDIA_TYPE = 'application/secevent+jwt';

export const SESSION_REVOKED = 'https://schemas.openid.net/secevent/caep/event-type/session-revoked';
export const TOKEN_CLAIMS_CHANGE = 'https://schemas.openid.net/secevent/caep/event-type/token-claims-change';
export const VERIFICATION = 'https://schemas.openid.net/secevent/ssf/event-type/verification';

/**
 * The event types a receiver may request. Verification events are not among them: SSF sends
 * them whenever a receiver asks, whatever the stream requested.
 */
export const EVENTS_SUPPORTED = [SESSION_REVOKED, TOKEN_CLAIMS_CHANGE] as const;
export type SupportedEvent = (typeof EVENTS_SUPPORTED)[number];

/** What an outbox row will become: the event type URI of its SET. */
export type SetKind = SupportedEvent | typeof VERIFICATION;

export const STREAM_STATUSES = ['enabled', 'paused', 'disabled'] as const;
export type StreamStatus = (typeof STREAM_STATUSES)[number];
