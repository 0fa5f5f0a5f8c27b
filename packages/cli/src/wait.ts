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
 * Polls a request every second until it is no longer pending, showing the time left before
 * it expires: a spinner on stderr when stderr is a terminal, else a plain line now and then.
 * Answers the request as last read.
 */
export async function waitForResolution(session: Session, initial: RequestView): Promise<RequestView> {
  // ora only on a real terminal (a pseudo-terminal of width 0 makes it redraw without end),
  // and loaded then only.
  const { stderr, now: clock, sleep } = io();
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
  let current = initial;
  let lastPlain = 0;
  try {
    while (current.state === 'pending') {
      const now = clock();
      if (spinner) spinner.text = progress(current, now);
      else if (now - lastPlain >= PLAIN_EVERY_MS) {
        warn(progress(current, now));
        lastPlain = now;
      }
      await sleep(POLL_MS);
      current = await session.lookup<RequestView>('GET', `/v1/requests/${current.id}`);
    }
  } finally {
    spinner?.stop();
  }
  return current;
}
