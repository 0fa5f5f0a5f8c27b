import { SET_MEDIA_TYPE } from './vocabulary.js';

/** What became of one push (RFC 8935 §2). */
export type PushOutcome =
  /** 2xx (RFC 8935: 202 Accepted): the receiver has the SET. */
  | { kind: 'delivered' }
  /** 400 with `{err, description}`: the receiver refuses this SET for good; sending it again cannot help. */
  | { kind: 'refused'; err: string; description: string }
  /** Anything else (network failure, timeout, 5xx, 401, a redirect…): try again later. */
  | { kind: 'failed'; error: string };

export interface PushTarget {
  endpointUrl: string;
  /** The Authorization header the receiver asked for, or null. */
  authorization: string | null;
}

/** Longest `err`/`description`/error text kept: they come from the receiver and go to the audit trail. */
const TEXT_LIMIT = 200;
/** Largest error body read from a receiver. */
const BODY_LIMIT = 8 * 1024;

function bounded(text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > TEXT_LIMIT ? `${printable.slice(0, TEXT_LIMIT)}…` : printable;
}

/** The body as text, or undefined past `BODY_LIMIT` bytes: a receiver's answer is read with a bound. */
async function readBounded(response: Response): Promise<string | undefined> {
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    // Leaving the loop cancels the rest of the body.
    if (size > BODY_LIMIT) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readSetError(response: Response): Promise<{ err: string; description: string }> {
  let body: unknown;
  try {
    const text = await readBounded(response);
    body = text === undefined ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  return {
    err: typeof b.err === 'string' && b.err !== '' ? bounded(b.err) : 'unspecified',
    description: typeof b.description === 'string' ? bounded(b.description) : '',
  };
}

function failureText(err: unknown): string {
  if (err instanceof Error && err.name === 'TimeoutError') return 'timed out';
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  if (typeof cause?.code === 'string') return bounded(cause.code);
  return bounded(err instanceof Error ? err.message : String(err));
}

/**
 * POSTs one SET to a receiver's push endpoint (RFC 8935 §2.1): the compact JWS as the body,
 * `Content-Type: application/secevent+jwt`, and the stream's Authorization header. Redirects
 * are not followed: the endpoint is what the receiver registered, nowhere else.
 *
 * @example
 * ```ts
 * const outcome = await pushSet(fetch, { endpointUrl, authorization: null }, jws, 10_000);
 * if (outcome.kind === 'failed') scheduleRetry();
 * ```
 */
export async function pushSet(
  fetchImpl: typeof fetch,
  target: PushTarget,
  jws: string,
  timeoutMs: number,
): Promise<PushOutcome> {
  let response: Response;
  try {
    response = await fetchImpl(target.endpointUrl, {
      method: 'POST',
      headers: {
        'content-type': SET_MEDIA_TYPE,
        accept: 'application/json',
        ...(target.authorization === null ? {} : { authorization: target.authorization }),
      },
      body: jws,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    return { kind: 'failed', error: failureText(err) };
  }
  if (response.status >= 200 && response.status < 300) {
    await response.body?.cancel().catch(() => undefined);
    return { kind: 'delivered' };
  }
  if (response.status === 400) return { kind: 'refused', ...(await readSetError(response)) };
  await response.body?.cancel().catch(() => undefined);
  return { kind: 'failed', error: `HTTP ${response.status}` };
}
