import { BrokerError } from '@tether-broker/client';
import { SseDecoder } from '@tether-broker/pep';
import type { RequestView } from '@tether-broker/protocol/api';
import { formatDuration } from './duration.js';
import { io } from './io.js';
import { sanitize, warn } from './output.js';
import type { Session } from './session.js';

/** How often the request is polled, and how often a plain progress line is written without a TTY. */
const POLL_MS = 1000;
const PLAIN_EVERY_MS = 15_000;

function progress(r: RequestView, now: number): string {
  const approvals = (r.reviews ?? []).filter((v) => v.decision === 'approve').length;
  const left = Math.max(0, Math.ceil((Date.parse(r.expires_at) - now) / 1000));
  return sanitize(
    `waiting for ${r.id}: ${approvals} of ${r.approvals_required} approval(s), expires in ${formatDuration(left)}`,
  );
}

/**
 * Follows a request until it is no longer pending, showing the time left before it expires: a
 * spinner on stderr when stderr is a terminal, else a plain line now and then. The broker
 * pushes each change (`GET /v1/requests/:id/events`, Server-Sent Events), so the decision shows
 * as it is made; a stream that ends early is opened again, and a broker without the stream is
 * asked once a second instead. Answers the request as last seen.
 */
export async function waitForResolution(session: Session, initial: RequestView): Promise<RequestView> {
  // ora only on a real terminal (a pseudo-terminal of width 0 makes it redraw without end),
  // and loaded then only.
  const { stderr, now: clock } = io();
  const spinner =
    stderr.isTTY && (stderr.columns ?? 0) > 0
      ? (await import('ora'))
          .default({
            stream: stderr as NodeJS.WriteStream,
            discardStdin: false,
            text: progress(initial, clock()),
          })
          .start()
      : undefined;
  let lastPlain = 0;
  const show = (r: RequestView) => {
    const now = clock();
    if (spinner) spinner.text = progress(r, now);
    else if (now - lastPlain >= PLAIN_EVERY_MS) {
      warn(progress(r, now));
      lastPlain = now;
    }
  };
  try {
    return await followPushed(session, initial, show).catch(async (err: unknown) => {
      // An older broker has no stream: ask once a second, as before.
      if (err instanceof BrokerError && (err.status === 404 || err.code === 'route_not_found'))
        return poll(session, initial, show);
      throw err;
    });
  } finally {
    spinner?.stop();
  }
}

/** The pushed changes, stream after stream, until the request is decided. */
async function followPushed(
  session: Session,
  initial: RequestView,
  show: (r: RequestView) => void,
): Promise<RequestView> {
  let current = initial;
  let quietStreams = 0;
  while (current.state === 'pending') {
    show(current);
    const before = current;
    current = await session.use(async (client) => {
      const response = await client.stream(`/v1/requests/${encodeURIComponent(current.id)}/events`);
      return readEvents(response, current, show);
    });
    // A stream that ends without news (the broker closing it, a proxy's timeout) is opened
    // again; one that keeps ending at once is not hammered.
    quietStreams = current === before ? quietStreams + 1 : 0;
    if (quietStreams > 0) await io().sleep(Math.min(POLL_MS * quietStreams, 10_000));
  }
  return current;
}

/** Reads `request` events from one stream, showing each, until it ends or the request is decided. */
async function readEvents(
  response: Response,
  initial: RequestView,
  show: (r: RequestView) => void,
): Promise<RequestView> {
  let current = initial;
  const decoder = new SseDecoder();
  const text = new TextDecoder();
  const reader = response.body?.getReader();
  if (!reader) return current;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return current;
      for (const message of decoder.push(text.decode(value, { stream: true }))) {
        if (message.event !== 'request') continue;
        current = JSON.parse(message.data) as RequestView;
        if (current.state !== 'pending') return current;
        show(current);
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** Asks every second: for a broker that cannot push. */
async function poll(
  session: Session,
  initial: RequestView,
  show: (r: RequestView) => void,
): Promise<RequestView> {
  let current = initial;
  while (current.state === 'pending') {
    show(current);
    await io().sleep(POLL_MS);
    current = await session.lookup<RequestView>('GET', `/v1/requests/${current.id}`);
  }
  return current;
}
