import { createParser, type EventSourceParser, type ParseError } from 'eventsource-parser';

/** One Server-Sent Events message, as the HTML standard's event-stream format defines it. */
export interface SseMessage {
  id: string | undefined;
  /** `message` when the block had no `event` field. */
  event: string;
  data: string;
}

/**
 * Splits a growing event-stream text into messages, with `eventsource-parser` (the HTML
 * standard's algorithm: fields, comments, multi-line `data`, any mix of LF, CR and CRLF line
 * ends, a CRLF split across chunks). A message larger than `maxBlockBytes` is a protocol
 * violation (the broker's messages are a few hundred bytes, a snapshot some kilobytes):
 * {@link push} throws, and the caller drops the connection rather than buffer without bound.
 */
export class SseDecoder {
  readonly #parser: EventSourceParser;
  #messages: SseMessage[] = [];
  #failure: ParseError | undefined;

  constructor(private readonly maxBlockBytes = 64 * 1024) {
    this.#parser = createParser({
      maxBufferSize: maxBlockBytes,
      onEvent: (message) => {
        this.#messages.push({ id: message.id, event: message.event ?? 'message', data: message.data });
      },
      onError: (error) => {
        // Unknown fields are skipped, as the standard says; only an oversized message fails.
        if (error.type === 'max-buffer-size-exceeded') this.#failure = error;
      },
    });
  }

  push(text: string): SseMessage[] {
    if (this.#failure === undefined) this.#parser.feed(text);
    if (this.#failure !== undefined)
      throw new Error(`an event-stream message is larger than ${this.maxBlockBytes} bytes`);
    const messages = this.#messages;
    this.#messages = [];
    return messages;
  }
}
