import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { randomBase64url, sha256Base64url, utf8LongerThan, webSha256Base64url } from './web.js';

// The WebCrypto helpers give what node:crypto and Buffer gave before them.
describe('web helpers', () => {
  it.each(['', 'abc', 'eyJhbGciOiJFZERTQSJ9.e30.sig', 'é€😀', 'x'.repeat(9000)])(
    'hashes %j as node:crypto does',
    async (text) => {
      const expected = createHash('sha256').update(text, 'utf8').digest('base64url');
      expect(await sha256Base64url(text)).toBe(expected);
      expect(await webSha256Base64url(text)).toBe(expected);
    },
  );

  it('hashes any text alike on the Node path and the WebCrypto path (lone surrogates included)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 300 }), async (text) => {
        expect(await sha256Base64url(text)).toBe(await webSha256Base64url(text));
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    ['', 0],
    ['a'.repeat(8), 8],
    ['a'.repeat(9), 8],
    ['é'.repeat(4), 8],
    ['é'.repeat(5), 8],
    ['😀😀', 8],
    ['😀😀a', 8],
    ['\ud800'.repeat(3), 8], // lone surrogates count as U+FFFD, 3 bytes each
    ['€'.repeat(3000), 8192],
  ])('tells whether %j is longer than %d bytes, as Buffer.byteLength does', (text, limit) => {
    expect(utf8LongerThan(text, limit)).toBe(Buffer.byteLength(text, 'utf8') > limit);
  });

  it('draws random base64url of the asked length', () => {
    const a = randomBase64url(18);
    expect(a).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(randomBase64url(18)).not.toBe(a);
  });
});
