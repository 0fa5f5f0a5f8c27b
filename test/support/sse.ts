/**
 * A small Server-Sent Events client for tests: opens a stream with `fetch`, parses it as the
 * HTML standard's event-stream format (fields, comments, multi-line data, CRLF), and hands out
 * messages one at a time with a deadline, so that no test waits for a fixed time.
 */

export interface SseMessage {
  /** The `id` field, if the message had one. */
  id: string | undefined;
  /** The `event` field; `message` when absent. */
  event: string;
  data: string;
}

/** Splits a growing event-stream text into messages. */
export class SseParser {
  #buffer = '';

  /** Feeds a chunk of text; returns the messages it completed. */
  push(text: string): SseMessage[] {
    this.#buffer += text;
    const messages: SseMessage[] = [];
    for (;;) {
      const end = /\r\n\r\n|\n\n|\r\r/.exec(this.#buffer);
      if (end === null) return messages;
      const block = this.#buffer.slice(0, end.index);
      this.#buffer = this.#buffer.slice(end.index + end[0].length);
      const message = parseBlock(block);
      if (message) messages.push(message);
    }
  }
}

function parseBlock(block: string): SseMessage | undefined {
  let id: string | undefined;
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  // A block of comments only dispatches nothing.
  if (data.length === 0 && id === undefined) return undefined;
  return { id, event, data: data.join('\n') };
}

/** Thrown when no message arrived before the deadline. */
export class SseTimeout extends Error {
  override readonly name = 'SseTimeout';
}

/** An open event stream. */
export class SseStream {
  readonly response: Response;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  readonly #decoder = new TextDecoder();
  readonly #parser = new SseParser();
  readonly #queue: SseMessage[] = [];
  readonly #abort: AbortController;
  #pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  #ended = false;

  constructor(response: Response, abort: AbortController) {
    this.response = response;
    this.#abort = abort;
  }

  /** True once the server has ended the stream. */
  get ended(): boolean {
    return this.#ended;
  }

  /** The next message, or throws {@link SseTimeout} if none arrives within `timeoutMs`, or an error if the stream ends. */
  async next(timeoutMs = 5000): Promise<SseMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const queued = this.#queue.shift();
      if (queued) return queued;
      if (this.#ended) throw new Error('the event stream has ended');
      const left = deadline - Date.now();
      if (left <= 0) throw new SseTimeout(`no event-stream message within ${timeoutMs} ms`);
      // A read left pending by a timeout is picked up again here, so no bytes are lost.
      this.#pending ??= this.#body().read();
      let timer: NodeJS.Timeout | undefined;
      const result = await Promise.race([
        this.#pending,
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), left);
        }),
      ]);
      clearTimeout(timer);
      if (result === 'timeout') continue;
      this.#pending = undefined;
      if (result.done) {
        this.#ended = true;
        this.#queue.push(...this.#parser.push(this.#decoder.decode()));
        continue;
      }
      this.#queue.push(...this.#parser.push(this.#decoder.decode(result.value, { stream: true })));
    }
  }

  /** The next message whose `event` is `event`, skipping others. */
  async nextOf(event: string, timeoutMs = 5000): Promise<SseMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = await this.next(Math.max(1, deadline - Date.now()));
      if (message.event === event) return message;
    }
  }

  /** Resolves once the server has ended the stream (other messages are discarded), or throws on timeout. */
  async waitForEnd(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#ended) {
      try {
        await this.next(Math.max(1, deadline - Date.now()));
      } catch (err) {
        if (this.#ended) return;
        throw err;
      }
    }
  }

  /** Disconnects from the client side. */
  close(): void {
    this.#pending?.catch(() => undefined);
    this.#abort.abort();
    this.#reader?.cancel().catch(() => undefined);
  }

  /** The body's reader, taken only when messages are read (so `response.json()` stays usable until then). */
  #body(): ReadableStreamDefaultReader<Uint8Array> {
    if (this.#reader === undefined) {
      if (this.response.body === null) throw new Error('the response has no body');
      this.#reader = this.response.body.getReader();
    }
    return this.#reader;
  }
}

/** Opens `url` as an event stream (any status: check `stream.response.status`). */
export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const abort = new AbortController();
  const response = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: abort.signal,
  });
  return new SseStream(response, abort);
}
