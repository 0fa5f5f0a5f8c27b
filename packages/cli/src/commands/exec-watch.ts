/**
 * Keeping `tether exec`'s session in view while its command runs: polling that it is live,
 * renewing its tokens, failing closed when the broker goes silent, ending it without hanging.
 */
import { setTimeout as pause } from 'node:timers/promises';
import { type BoundSession, type BrokerClient, BrokerError } from '@tether-broker/client';
import type { SessionView } from '@tether-broker/protocol/api';
import { seg } from '../api.js';
import { io } from '../io.js';

/** Fail closed: a session that cannot be checked for this long is treated as over. */
export const UNREACHABLE_LIMIT_MS = 30_000;
/** Refresh this long before the access token expires (less when tokens live shorter). */
const REFRESH_MARGIN_MS = 60_000;
/** A refresh that failed without an answer that the session ended is tried again after this. */
const REFRESH_RETRY_MS = 5_000;
/** Ending the session after the broker went silent must not hang the exit. */
const LAST_END_TIMEOUT_MS = 5_000;

/** Milliseconds until the access token expiring at `expiresAt` should be refreshed. */
export function refreshDelay(now: number, expiresAt: number): number {
  const left = expiresAt - now;
  return Math.max(1_000, left - Math.min(REFRESH_MARGIN_MS, left / 2));
}

/** Why the command must stop although it has not finished. */
export type Stop = { kind: 'ended'; reason: string } | { kind: 'unreachable' };

/** Waits `ms`, or less if `signal` aborts; never rejects. */
const wait = (ms: number, signal?: AbortSignal) =>
  pause(ms, undefined, signal ? { signal } : {}).catch(() => undefined);

/**
 * `work`'s answer, or `silent` if it takes longer than `ms` or `signal` aborts first: a call
 * that hangs must count as silence, not hold the watch up.
 */
async function within<T>(work: Promise<T>, ms: number, signal: AbortSignal): Promise<T | 'silent'> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: () => void = () => undefined;
  const cut = new Promise<'silent'>((resolve) => {
    timer = setTimeout(() => resolve('silent'), ms);
    onAbort = () => resolve('silent');
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, cut]);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

/** Why the broker says the session is over, or undefined while it is live (or cannot be asked). */
async function endReason(client: BrokerClient, id: string): Promise<string | undefined> {
  const view = await client.call<SessionView>('GET', `/v1/sessions/${seg(id)}`);
  return view.state === 'active' ? undefined : (view.end_reason ?? view.state);
}

/**
 * Keeps the session's tokens fresh: refreshes before the access token expires (the broker
 * re-evaluates the session at every refresh), one refresh at a time — two with the same
 * refresh token would make the broker end the session as stolen.
 */
class Renewer {
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<Stop | undefined> | undefined;
  #stopped = false;
  readonly #bound: BoundSession;
  readonly #client: BrokerClient;
  readonly #onEnded: (stop: Stop) => void;

  constructor(bound: BoundSession, client: BrokerClient, onEnded: (stop: Stop) => void) {
    this.#bound = bound;
    this.#client = client;
    this.#onEnded = onEnded;
  }

  start(): void {
    this.#schedule(refreshDelay(io().now(), this.#bound.tokens.expiresAt));
  }

  /** Refreshes now; answers why the session is over if the broker refuses because it is. */
  renew(): Promise<Stop | undefined> {
    this.#inFlight ??= this.#refresh().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  dispose(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      void this.renew().then((stop) => {
        if (stop) this.#onEnded(stop);
      });
    }, ms);
  }

  async #refresh(): Promise<Stop | undefined> {
    try {
      await this.#bound.refresh();
      this.#schedule(refreshDelay(io().now(), this.#bound.tokens.expiresAt));
      return undefined;
    } catch (err) {
      if (err instanceof BrokerError && err.code === 'invalid_grant') {
        // The refresh detail is the fallback: the session's own end reason says it better.
        const reason = await endReason(this.#client, this.#bound.info.id).catch(() => undefined);
        return { kind: 'ended', reason: reason ?? err.detail };
      }
      this.#schedule(REFRESH_RETRY_MS);
      return undefined;
    }
  }
}

/**
 * One look at the session: live, over (and why), or no usable answer. A refusal to answer at
 * all (401/403: e.g. the principal was disabled) is checked with a refresh, which needs only
 * the session's own key, so that it reads as the session's end rather than as silence.
 */
async function look(client: BrokerClient, renewer: Renewer, id: string): Promise<'live' | 'silent' | Stop> {
  try {
    const reason = await endReason(client, id);
    return reason === undefined ? 'live' : { kind: 'ended', reason };
  } catch (err) {
    if (err instanceof BrokerError && (err.status === 401 || err.status === 403)) {
      return (await renewer.renew()) ?? 'silent';
    }
    return 'silent';
  }
}

/**
 * Polls the session every `pollMs` until it is over, or until the broker has given no usable
 * answer for 30 s (fail closed); answers undefined once `signal` aborts. A call that hangs
 * counts as silence too.
 */
async function watch(
  client: BrokerClient,
  renewer: Renewer,
  id: string,
  pollMs: number,
  signal: AbortSignal,
): Promise<Stop | undefined> {
  let lastAnswer = io().now();
  while (!signal.aborted) {
    const left = lastAnswer + UNREACHABLE_LIMIT_MS - io().now();
    if (left <= 0) return { kind: 'unreachable' };
    const seen = await within(look(client, renewer, id), left, signal);
    if (signal.aborted) return undefined;
    if (typeof seen === 'object') return seen;
    if (seen === 'live') lastAnswer = io().now();
    await wait(pollMs, signal);
  }
  return undefined;
}

/** Watching and renewing together: `stopped` settles with the first reason to stop the command. */
export function guard(
  client: BrokerClient,
  bound: BoundSession,
  pollMs: number,
): { stopped: Promise<Stop>; dispose(): void } {
  const abort = new AbortController();
  let settle: (stop: Stop) => void = () => undefined;
  const stopped = new Promise<Stop>((resolve) => {
    settle = resolve;
  });
  const renewer = new Renewer(bound, client, (stop) => settle(stop));
  renewer.start();
  void watch(client, renewer, bound.info.id, pollMs, abort.signal).then((stop) => {
    if (stop) settle(stop);
  });
  return {
    stopped,
    dispose: () => {
      abort.abort();
      renewer.dispose();
    },
  };
}

/** Ends the session without letting a failure (or a silent broker) hold up the exit; answers whether it did. */
export async function endQuietly(bound: BoundSession): Promise<boolean> {
  const ended = bound.end('completed').then(
    () => true,
    () => false,
  );
  return Promise.race([ended, wait(LAST_END_TIMEOUT_MS).then(() => false)]);
}
