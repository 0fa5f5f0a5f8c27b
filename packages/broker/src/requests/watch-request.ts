import type { ServerResponse } from 'node:http';
import { TetherError } from '@tether-broker/protocol';
import type { BrokerContext, Caller } from '../core/context.js';
import type { AccessRequest, Review } from '../domain/request.js';
import { getRequest } from './query-requests.js';

/**
 * `GET /v1/requests/:id/events`: the request as Server-Sent Events, so a waiting requester
 * (`tether request … --wait`) is told of the decision as it is made instead of asking again
 * and again. The first event is the request as it is; another follows each change (an
 * approval, the decision, the expiry); the stream ends once the request is no longer pending,
 * after `WATCH_LIMITS.lifetimeMs` (the client opens a new one), or when the client goes. The
 * broker reads the request from its store (any replica may have made the change) every
 * `pollMs`; a comment line keeps proxies from closing a quiet stream. A principal may watch
 * at most `perPrincipal` requests at once.
 */
export const WATCH_LIMITS = { pollMs: 250, keepAliveMs: 15_000, lifetimeMs: 5 * 60_000, perPrincipal: 8 };

const watching = new Map<string, number>();

/** Checks the caller may read the request and may open one more watch; answers the request. */
export async function openWatch(
  ctx: BrokerContext,
  caller: Caller,
  id: string,
): Promise<{ request: AccessRequest; reviews: Review[]; release: () => void }> {
  const found = await getRequest(ctx, caller, id);
  const key = caller.principal.id;
  const open = watching.get(key) ?? 0;
  if (open >= WATCH_LIMITS.perPrincipal)
    throw new TetherError(
      'rate_limited',
      `a principal may watch at most ${WATCH_LIMITS.perPrincipal} requests at once`,
    );
  watching.set(key, open + 1);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    const left = (watching.get(key) ?? 1) - 1;
    if (left <= 0) watching.delete(key);
    else watching.set(key, left);
  };
  return { ...found, release };
}

/** Streams the request's changes into `response` (already a hijacked reply) until it is decided. */
export async function streamRequest(
  ctx: BrokerContext,
  caller: Caller,
  first: { request: AccessRequest; reviews: Review[] },
  response: ServerResponse,
  view: (request: AccessRequest, reviews: Review[]) => unknown,
): Promise<void> {
  response.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
  });
  let gone = false;
  response.once('close', () => {
    gone = true;
  });
  const started = Date.now();
  let lastSent = '';
  let lastWrite = Date.now();
  let current = first;
  for (;;) {
    const data = JSON.stringify(view(current.request, current.reviews));
    if (data !== lastSent) {
      response.write(`event: request\ndata: ${data}\n\n`);
      lastSent = data;
      lastWrite = Date.now();
    } else if (Date.now() - lastWrite >= WATCH_LIMITS.keepAliveMs) {
      response.write(': keep-alive\n\n');
      lastWrite = Date.now();
    }
    if (current.request.state !== 'pending' || gone || Date.now() - started >= WATCH_LIMITS.lifetimeMs) break;
    await new Promise((resolve) => setTimeout(resolve, WATCH_LIMITS.pollMs));
    if (gone) break;
    try {
      current = await getRequest(ctx, caller, current.request.id);
    } catch {
      // The store blinked, or the request is no longer visible: end; the client asks again.
      break;
    }
  }
  response.end();
}
