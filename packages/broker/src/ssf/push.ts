import { SET_MEDIA_TYPE } from '../domain/ssf-vocabulary.js';
import { type OutboundClient, type OutboundResponse, Unreachable } from '../net/outbound.js';

/** What became of one push (RFC 8935 §2). */
export type PushOutcome =
  /** 2xx (RFC 8935: 202 Accepted): the receiver has the SET. */
  | { kind: 'delivered' }
  /** 400 with `{err, description}`: the receiver refuses this SET for good; sending it again cannot help. */
  | { kind: 'refused'; err: string; description: string }
  /**
   * Anything else (a refused destination, network failure, timeout, 5xx, 401, a redirect…): try
   * again later. `error` is what the stream's owner may see ("unreachable", always); `reason` is
   * for the operator's log only.
   */
  | { kind: 'failed'; error: string; reason?: string };

export interface PushTarget {
  endpointUrl: string;
  /** The Authorization header the receiver asked for, or null. */
  authorization: string | null;
}

/** Longest `err`/`description`/error text kept: they come from the receiver and go to the audit trail. */
const TEXT_LIMIT = 200;
/** Largest error body read from a receiver; past it the body is dropped (the `err` reads "unspecified"). */
const BODY_LIMIT = 8 * 1024;

function bounded(text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > TEXT_LIMIT ? `${printable.slice(0, TEXT_LIMIT)}…` : printable;
}

function readSetError(response: OutboundResponse): { err: string; description: string } {
  let body: unknown;
  try {
    body = response.truncated ? undefined : JSON.parse(response.body.toString('utf8'));
  } catch {
    body = undefined;
  }
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  return {
    err: typeof b.err === 'string' && b.err !== '' ? bounded(b.err) : 'unspecified',
    description: typeof b.description === 'string' ? bounded(b.description) : '',
  };
}

/**
 * POSTs one SET to a receiver's push endpoint (RFC 8935 §2.1) through the broker's outbound
 * client: the compact JWS as the body, `Content-Type: application/secevent+jwt`, and the
 * stream's Authorization header. Redirects are not followed, and the endpoint must pass the
 * outbound rules (https, no private destination unless the operator allows it). Every failure
 * reads "unreachable": what the receiver chose as endpoint learns nothing of what is there (a
 * closed port, another service, an error status) from the stream's status.
 *
 * @example
 * ```ts
 * const outcome = await pushSet(outboundOf(ctx), { endpointUrl, authorization: null }, jws, 10_000);
 * if (outcome.kind === 'failed') scheduleRetry();
 * ```
 */
export async function pushSet(
  outbound: OutboundClient,
  target: PushTarget,
  jws: string,
  timeoutMs: number,
): Promise<PushOutcome> {
  let response: OutboundResponse;
  try {
    response = await outbound.request(target.endpointUrl, {
      method: 'POST',
      headers: {
        'content-type': SET_MEDIA_TYPE,
        accept: 'application/json',
        ...(target.authorization === null ? {} : { authorization: target.authorization }),
      },
      body: jws,
      timeoutMs,
      maxBytes: BODY_LIMIT,
      oversize: 'truncate',
    });
  } catch (err) {
    return {
      kind: 'failed',
      error: 'unreachable',
      reason: err instanceof Unreachable ? err.reason : String(err),
    };
  }
  if (response.status >= 200 && response.status < 300) return { kind: 'delivered' };
  if (response.status === 400) return { kind: 'refused', ...readSetError(response) };
  return { kind: 'failed', error: 'unreachable', reason: `HTTP ${response.status}` };
}
