import { describe, expect, it } from 'vitest';
import { sseMessage } from './stream.js';

describe('sseMessage', () => {
  it('frames an event with its id, and a heartbeat without one', () => {
    expect(sseMessage({ id: 42, event: 'revocation', data: 'a.b.c' })).toBe(
      'id: 42\nevent: revocation\ndata: a.b.c\n\n',
    );
    // No id: a heartbeat must not move the client's Last-Event-ID.
    expect(sseMessage({ event: 'heartbeat', data: 'x.y.z' })).toBe('event: heartbeat\ndata: x.y.z\n\n');
  });

  it('refuses a line break, which would let the data forge fields of its own', () => {
    expect(() =>
      sseMessage({ event: 'revocation', data: 'a\n\nid: 999\nevent: revocation\ndata: x' }),
    ).toThrow();
    expect(() => sseMessage({ event: 'heartbeat\r', data: 'a' })).toThrow();
  });
});
