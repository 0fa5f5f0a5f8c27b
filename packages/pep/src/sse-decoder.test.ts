import { describe, expect, it } from 'vitest';
import { SseDecoder } from './sse-decoder.js';

describe('SseDecoder', () => {
  it('delivers a message ending in LF then CRLF (the hand-written decoder held it back)', () => {
    const decoder = new SseDecoder();
    expect(decoder.push('event: revocation\nid: 7\ndata: a.b.c\n\r\n')).toEqual([
      { id: '7', event: 'revocation', data: 'a.b.c' },
    ]);
  });

  it('reads any mix of line ends, a CRLF split across chunks, comments and multi-line data', () => {
    const decoder = new SseDecoder();
    const chunks = [
      ': keep-alive\r\n\r\n',
      'event: heartbeat\r',
      '\ndata: x\r',
      '\n\r',
      '\ndata: one\rdata: two\r\r',
      'data: three\n\n',
    ];
    const messages = chunks.flatMap((chunk) => decoder.push(chunk));
    expect(messages).toEqual([
      { id: undefined, event: 'heartbeat', data: 'x' },
      { id: undefined, event: 'message', data: 'one\ntwo' },
      { id: undefined, event: 'message', data: 'three' },
    ]);
  });

  it('dispatches nothing for a block without data, and skips unknown fields', () => {
    const decoder = new SseDecoder();
    expect(decoder.push('event: revocation\nid: 3\n\nfoo: bar\ndata: z\n\n')).toEqual([
      { id: undefined, event: 'message', data: 'z' },
    ]);
  });

  it('refuses a message larger than its bound instead of buffering without end', () => {
    const decoder = new SseDecoder(1024);
    expect(decoder.push(`data: ${'a'.repeat(900)}\n\n`)).toHaveLength(1);
    expect(() => decoder.push(`data: ${'a'.repeat(2000)}`)).toThrow('larger than 1024 bytes');
    // Once refused, the stream is not read further.
    expect(() => decoder.push('\n\n')).toThrow('larger than 1024 bytes');
  });
});
