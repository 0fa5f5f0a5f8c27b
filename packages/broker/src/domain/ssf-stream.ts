import { TetherError } from '@tether-broker/protocol';
import { isAcceptableJwksUri } from './federation.js';
import {
  type DeliveryMethod,
  EVENTS_SUPPORTED,
  type StreamStatus,
  type SupportedEvent,
} from './ssf-vocabulary.js';

/**
 * An SSF event stream (SSF 1.0 §8.1.1): how the broker's Security Event Tokens reach one
 * receiver of one tenant. Pure: no I/O here.
 */
export interface Stream {
  id: string;
  tenantId: string;
  /** The receiver principal that manages it; admins of the tenant manage every stream. */
  ownerId: string;
  /** The SETs' `aud`; fixed at creation (SSF: "This property cannot be updated"). */
  aud: string[];
  eventsRequested: string[];
  method: DeliveryMethod;
  /** Push: where SETs are POSTed. Poll: null (the broker's poll endpoint is derived from the id). */
  endpointUrl: string | null;
  /** Push: whether an Authorization header is sent. The header itself is write-only. */
  hasAuthorization: boolean;
  description: string;
  status: StreamStatus;
  statusReason: string | null;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

/** What a receiver configures (SSF "Receiver-Supplied" properties, plus Tether's `aud` for admins). */
export interface StreamSettings {
  eventsRequested: string[];
  method: DeliveryMethod;
  endpointUrl: string | null;
  /** The Authorization header value to send with every push, or null for none. */
  authorization: string | null;
  description: string;
}

export const STREAM_LIMITS = {
  /** SSF lets the transmitter truncate a description; a longer one is refused instead. */
  descriptionLength: 256,
  eventsRequested: 32,
  audValues: 8,
  /** Largest `state` echoed in a verification event. */
  stateLength: 512,
} as const;

/**
 * The event types the stream carries: the supported ones the receiver requested, in a fixed
 * order. Unknown requested types are ignored, as SSF requires.
 */
export function eventsDelivered(eventsRequested: readonly string[]): SupportedEvent[] {
  return EVENTS_SUPPORTED.filter((e) => eventsRequested.includes(e));
}

/** Whether an event of type `kind` is to be queued on the stream now (a disabled stream holds nothing). */
export function carries(stream: Pick<Stream, 'status' | 'eventsRequested'>, kind: SupportedEvent): boolean {
  return stream.status !== 'disabled' && eventsDelivered(stream.eventsRequested).includes(kind);
}

/** The poll endpoint of a poll stream (SSF: supplied by the transmitter, unique per stream). */
export function pollEndpoint(publicUrl: string, streamId: string): string {
  return `${publicUrl}/v1/ssf/poll/${streamId}`;
}

/**
 * Checks the settings that a schema cannot: a push stream has an endpoint the broker may
 * send SETs to (https, or http on a loopback host, like a trust record's JWKS; no credentials
 * in the URL: they belong in `authorization_header`), a poll stream has neither endpoint nor
 * header of its own.
 */
export function assertSettingsAreCoherent(settings: StreamSettings): void {
  const invalid = (detail: string) => new TetherError('invalid_request', detail);
  if (settings.method === 'push') {
    if (settings.endpointUrl === null) throw invalid('push delivery needs delivery.endpoint_url');
    if (!isAcceptableJwksUri(settings.endpointUrl))
      throw invalid('delivery.endpoint_url must be an https URL without credentials or fragment');
    return;
  }
  if (settings.endpointUrl !== null)
    throw invalid('for poll delivery the broker supplies delivery.endpoint_url; leave it out');
  if (settings.authorization !== null)
    throw invalid('delivery.authorization_header applies to push delivery only');
}

/** The stream's URL without its query string: what the audit trail records (a query may hold a token). */
export function endpointForAudit(endpointUrl: string | null): string | null {
  if (endpointUrl === null) return null;
  const url = new URL(endpointUrl);
  return `${url.origin}${url.pathname}`;
}
