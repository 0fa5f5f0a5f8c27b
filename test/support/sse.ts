/**
 * A small Server-Sent Events client for tests: opens a stream over HTTP, parses it as the HTML
 * standard's event-stream format (fields, comments, multi-line data, CRLF), and hands out
 * messages one at a time with a deadline, so that no test waits for a fixed time.
 *
 * It uses `node:http` with a connection of its own rather than `fetch`: undici's shared pool
 * opens a spare connection after a stream is aborted, and a connection that never sends a
 * request keeps `server.close()` waiting until the server's headers timeout.
 */
import { type IncomingHttpHeaders, type IncomingMessage, request } from 'node:http';
import { SseDecoder, type SseMessage } from '../../packages/pep/src/sse-decoder.js';

// The decoder the enforcement points use: the tests read the stream exactly as a PEP does.
export type { SseMessage };
/** Thrown when no message arrived before the deadline. */
export class SseTimeout extends Error {
  override readonly name = 'SseTimeout';
}

/** An open event stream (or the refusal the server answered instead). */
export class SseStream {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly #response: IncomingMessage;
  readonly #parser = new SseDecoder();
  readonly #queue: SseMessage[] = [];
  #text = '';
  #ended = false;
  #changed: (() => void) | undefined;

  constructor(response: IncomingMessage) {
    this.#response = response;
    this.status = response.statusCode ?? 0;
    this.headers = response.headers;
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      if (this.status === 200) this.#queue.push(...this.#parser.push(chunk));
      else this.#text += chunk;
      this.#changed?.();
    });
    const end = () => {
      this.#ended = true;
      this.#changed?.();
    };
    response.on('end', end);
    response.on('close', end);
    response.on('error', end);
  }

  /** True once the server has ended the stream (or the connection is gone). */
  get ended(): boolean {
    return this.#ended;
  }

  /** A refusal's body, as JSON (waits for the whole body). */
  async json(timeoutMs = 5000): Promise<unknown> {
    await this.#until(() => this.#ended, timeoutMs);
    return JSON.parse(this.#text);
  }

  /** The next message; throws {@link SseTimeout} if none arrives within `timeoutMs`, or an error if the stream ends. */
  async next(timeoutMs = 5000): Promise<SseMessage> {
    await this.#until(() => this.#queue.length > 0 || this.#ended, timeoutMs);
    const message = this.#queue.shift();
    if (message === undefined) throw new Error('the event stream has ended');
    return message;
  }

  /** The next message whose `event` is `event`, skipping others. */
  async nextOf(event: string, timeoutMs = 5000): Promise<SseMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = await this.next(Math.max(1, deadline - Date.now()));
      if (message.event === event) return message;
    }
  }

  /** Resolves once the server has ended the stream; throws on timeout. */
  async waitForEnd(timeoutMs = 5000): Promise<void> {
    await this.#until(() => this.#ended, timeoutMs);
  }

  /** Disconnects from the client side. */
  close(): void {
    this.#response.destroy();
  }

  async #until(condition: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new SseTimeout(`the event stream did not answer within ${timeoutMs} ms`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#changed = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#changed = undefined;
    }
  }
}

/** Opens `url` as an event stream, on a connection of its own (any status: check `stream.status`). */
export function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers }, agent: false }, (res) =>
      resolve(new SseStream(res)),
    );
    req.on('error', reject);
    req.end();
  });
}

/** Messages up to (not including) the next heartbeat; then that heartbeat. */
export async function untilHeartbeat(
  stream: SseStream,
): Promise<{ before: SseMessage[]; heartbeat: SseMessage }> {
  const before: SseMessage[] = [];
  for (;;) {
    const message = await stream.next();
    if (message.event === 'heartbeat') return { before, heartbeat: message };
    before.push(message);
  }
}
