/** One Server-Sent Events message, as the HTML standard's event-stream format defines it. */
export interface SseMessage {
  id: string | undefined;
  /** `message` when the block had no `event` field. */
  event: string;
  data: string;
}

/**
 * Splits a growing event-stream text into messages: `field: value` lines, comments (`:`),
 * multi-line `data`, and LF, CR or CRLF line ends. A block larger than `maxBlockBytes` is a
 * protocol violation (the broker's messages are a few hundred bytes): {@link push} throws, and
 * the caller drops the connection rather than buffer without bound.
 */
export class SseDecoder {
  #buffer = '';

  constructor(private readonly maxBlockBytes = 64 * 1024) {}

  push(text: string): SseMessage[] {
    this.#buffer += text;
    const messages: SseMessage[] = [];
    for (;;) {
      const end = /\r\n\r\n|\n\n|\r\r/.exec(this.#buffer);
      if (end === null) break;
      const block = this.#buffer.slice(0, end.index);
      this.#buffer = this.#buffer.slice(end.index + end[0].length);
      const message = parseBlock(block);
      if (message !== undefined) messages.push(message);
    }
    if (this.#buffer.length > this.maxBlockBytes)
      throw new Error(`an event-stream message is larger than ${this.maxBlockBytes} bytes`);
    return messages;
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
  // A block of comments or unknown fields only dispatches nothing.
  return data.length === 0 ? undefined : { id, event, data: data.join('\n') };
}
