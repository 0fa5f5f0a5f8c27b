import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { sealSecret } from '../config/key-encryption.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { newId } from '../domain/ids.js';
import { hasRole } from '../domain/principal.js';
import {
  assertSettingsAreCoherent,
  endpointForAudit,
  eventsDelivered,
  pollEndpoint,
  type Stream,
  type StreamSettings,
} from '../domain/ssf-stream.js';
import { type DeliveryMethodUri, EVENTS_SUPPORTED, methodOf } from '../domain/ssf-vocabulary.js';
import { assertDestination } from '../net/client.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import { countOutbox } from '../store/repositories/ssf-outbox.js';
import {
  deleteStream,
  insertStream,
  listStreams,
  writeStreamSettings,
} from '../store/repositories/ssf-streams.js';
import { lockVisibleStream, requireStreamManager, visibleStream } from './access.js';

/** `delivery` as a receiver sends it. */
export interface DeliveryInput {
  method: DeliveryMethodUri;
  endpointUrl?: string | undefined;
  authorizationHeader?: string | undefined;
}

/** The receiver-supplied members of a stream configuration (SSF 1.0 §8.1.1). */
export interface StreamInput {
  eventsRequested?: string[] | undefined;
  delivery?: DeliveryInput | undefined;
  description?: string | undefined;
}

export interface CreateStreamInput extends StreamInput {
  /** Tether: an admin may name the receiver's audience; a receiver's streams carry its own principal id. */
  aud?: string[] | undefined;
}

/** An update; transmitter-supplied members may be echoed back, and must then match. */
export interface UpdateStreamInput extends StreamInput {
  streamId: string;
  iss?: string | undefined;
  aud?: string[] | undefined;
  eventsSupported?: string[] | undefined;
  eventsDelivered?: string[] | undefined;
}

const invalid = (detail: string) => new TetherError('invalid_request', detail);

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((x) => right.has(x));
}

/** `delivery` as settings. A poll stream's endpoint is the broker's: it may only be echoed back. */
function deliverySettings(
  d: DeliveryInput | undefined,
  ownPollEndpoint: string | null,
): Pick<StreamSettings, 'method' | 'endpointUrl' | 'authorization'> {
  // SSF: a stream created without `delivery` is a poll stream.
  if (d === undefined) return { method: 'poll', endpointUrl: null, authorization: null };
  const method = methodOf(d.method);
  let endpointUrl = d.endpointUrl ?? null;
  if (method === 'poll' && endpointUrl !== null) {
    if (endpointUrl !== ownPollEndpoint)
      throw invalid('for poll delivery the broker supplies delivery.endpoint_url: leave it out');
    endpointUrl = null;
  }
  return { method, endpointUrl, authorization: d.authorizationHeader ?? null };
}

async function seal(ctx: BrokerContext, authorization: string | null): Promise<string | null> {
  return authorization === null ? null : sealSecret(ctx.kek, authorization);
}

/** What the audit trail keeps of a stream's settings: never the Authorization header, nor a URL's query. */
function auditDetails(stream: Stream): Record<string, unknown> {
  return {
    method: stream.method,
    endpoint_url: endpointForAudit(stream.endpointUrl),
    authorization_header: stream.hasAuthorization,
    events_requested: stream.eventsRequested,
    aud: stream.aud,
    owner: stream.ownerId,
  };
}

async function audit(tx: TxHandle, caller: Caller, stream: Stream, action: string, at: number, extra = {}) {
  await recordAudit(tx, stream.tenantId, at, {
    actor: caller.principal.id,
    action,
    target: stream.id,
    outcome: 'success',
    principalId: stream.ownerId,
    details: { ...auditDetails(stream), ...extra },
  });
}

/** A receiver (or an admin) creates an event stream (SSF 1.0 §8.1.1.1). Streams start enabled. */
export async function createStream(
  ctx: BrokerContext,
  caller: Caller,
  input: CreateStreamInput,
): Promise<Stream> {
  requireStreamManager(caller);
  if (input.aud !== undefined && !hasRole(caller.principal, 'admin'))
    throw invalid('aud is supplied by the transmitter: it is your principal id');
  const settings: StreamSettings = {
    eventsRequested: input.eventsRequested ?? [...EVENTS_SUPPORTED],
    ...deliverySettings(input.delivery, null),
    description: input.description ?? '',
  };
  assertSettingsAreCoherent(settings);
  assertDestination(ctx, 'delivery.endpoint_url', settings.endpointUrl);
  const now = ctx.clock.now();
  const stream: Stream = {
    id: newId('stream'),
    tenantId: caller.tenant.id,
    ownerId: caller.principal.id,
    aud: input.aud ?? [caller.principal.id],
    eventsRequested: settings.eventsRequested,
    method: settings.method,
    endpointUrl: settings.endpointUrl,
    hasAuthorization: settings.authorization !== null,
    description: settings.description,
    status: 'enabled',
    statusReason: null,
    createdBy: caller.principal.id,
    createdAt: now,
    updatedAt: now,
  };
  const sealed = await seal(ctx, settings.authorization);
  await inTransaction(ctx.store, async (tx) => {
    await insertStream(tx, stream, sealed);
    await audit(tx, caller, stream, 'ssf.stream.created', now);
  });
  return stream;
}

/** The caller's streams: an admin's are all of the tenant's, a receiver's are its own. */
export async function readStreams(ctx: BrokerContext, caller: Caller): Promise<Stream[]> {
  requireStreamManager(caller);
  return listStreams(
    ctx.store,
    caller.tenant.id,
    hasRole(caller.principal, 'admin') ? undefined : caller.principal.id,
  );
}

export async function readStream(ctx: BrokerContext, caller: Caller, streamId: string): Promise<Stream> {
  return visibleStream(ctx.store, caller, streamId);
}

function checkEchoes(ctx: BrokerContext, stream: Stream, input: UpdateStreamInput): void {
  if (input.iss !== undefined && input.iss !== ctx.config.publicUrl)
    throw invalid('iss is not this transmitter');
  if (input.aud !== undefined && !sameSet(input.aud, stream.aud)) throw invalid('aud cannot be changed');
  if (input.eventsSupported !== undefined && !sameSet(input.eventsSupported, EVENTS_SUPPORTED))
    throw invalid('events_supported does not match what this transmitter supports');
  if (
    input.eventsDelivered !== undefined &&
    !sameSet(input.eventsDelivered, eventsDelivered(stream.eventsRequested))
  )
    throw invalid("events_delivered does not match the stream's current value");
}

/**
 * Updates (`patch`: members present change, the others stay; SSF §8.1.1.3) or replaces
 * (`replace`: the stream becomes what a creation with this body would give, keeping its id,
 * audience, owner and status; §8.1.1.4) a stream's receiver-supplied configuration. The
 * Authorization header is write-only: sending `delivery` without it removes it.
 */
export async function updateStream(
  ctx: BrokerContext,
  caller: Caller,
  input: UpdateStreamInput,
  mode: 'patch' | 'replace',
): Promise<Stream> {
  requireStreamManager(caller);
  return inTransaction(ctx.store, async (tx) => {
    const current = await lockVisibleStream(tx, caller, input.streamId);
    checkEchoes(ctx, current, input);
    const keep = mode === 'patch';
    const newDelivery =
      input.delivery !== undefined || !keep
        ? deliverySettings(input.delivery, pollEndpoint(ctx.config.publicUrl, current.id))
        : undefined;
    const settings: StreamSettings = {
      eventsRequested: input.eventsRequested ?? (keep ? current.eventsRequested : [...EVENTS_SUPPORTED]),
      method: newDelivery?.method ?? current.method,
      endpointUrl: newDelivery ? newDelivery.endpointUrl : current.endpointUrl,
      authorization: newDelivery ? newDelivery.authorization : null,
      description: input.description ?? (keep ? current.description : ''),
    };
    assertSettingsAreCoherent(settings);
    if (newDelivery) assertDestination(ctx, 'delivery.endpoint_url', settings.endpointUrl);
    const now = ctx.clock.now();
    const next: Stream = {
      ...current,
      eventsRequested: settings.eventsRequested,
      method: settings.method,
      endpointUrl: settings.endpointUrl,
      hasAuthorization: newDelivery ? newDelivery.authorization !== null : current.hasAuthorization,
      description: settings.description,
      updatedAt: now,
    };
    await writeStreamSettings(
      tx,
      next,
      newDelivery ? await seal(ctx, newDelivery.authorization) : undefined,
      now,
    );
    await audit(tx, caller, next, 'ssf.stream.updated', now, { mode });
    return next;
  });
}

/** Deletes a stream (SSF §8.1.1.5); the SETs still waiting on it are dropped, and the audit record says how many. */
export async function removeStream(ctx: BrokerContext, caller: Caller, streamId: string): Promise<void> {
  requireStreamManager(caller);
  await inTransaction(ctx.store, async (tx) => {
    const stream = await lockVisibleStream(tx, caller, streamId);
    const dropped = await countOutbox(tx, stream.id);
    await deleteStream(tx, stream.tenantId, stream.id);
    await audit(tx, caller, stream, 'ssf.stream.deleted', ctx.clock.now(), { dropped });
  });
}
