import { readFileSync } from 'node:fs';
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_STATUS_LIST_ENTRIES,
  type StatusBits,
  StatusList,
  StatusListError,
  TOKEN_STATUS,
} from './status-list.js';

/** Vectors from the draft's repository (see the fixture's `source` block). */
interface Vector {
  name: string;
  bits: StatusBits;
  size: number;
  lst: string;
  uncompressed_hex?: string;
  statuses?: number[];
  /** Long vectors: the only indices whose status is not 0. */
  nonzero?: [number, number][];
  /** The 8-bit long vector: every listed index and its status (one of them is 0). */
  entries?: [number, number][];
  decompressed_length_bytes: number;
}

const fixture = JSON.parse(
  readFileSync(new URL('../test-fixtures/token-status-list.json', import.meta.url), 'utf8'),
) as { vectors: Vector[] };

const ALL_BITS: StatusBits[] = [1, 2, 4, 8];

/** The expected status of every index of a vector, as a dense array. */
function expectedStatuses(vector: Vector): number[] {
  if (vector.statuses) return vector.statuses;
  const statuses = new Array<number>(vector.size).fill(0);
  for (const [index, status] of vector.nonzero ?? vector.entries ?? []) statuses[index] = status;
  return statuses;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** Indices where `list` disagrees with `expected` (at most a few, for a readable failure). */
function mismatches(list: StatusList, expected: ArrayLike<number>): number[] {
  const wrong: number[] = [];
  for (let i = 0; i < expected.length && wrong.length < 5; i++)
    if (list.get(i) !== expected[i]) wrong.push(i);
  return wrong;
}

/** mulberry32: a small seeded PRNG, so a failure replays. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function refusal(run: () => unknown): StatusListError {
  try {
    run();
  } catch (err) {
    if (err instanceof StatusListError) return err;
    throw err;
  }
  throw new Error('expected a StatusListError');
}

const lstOf = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');

describe('StatusList: draft test vectors', () => {
  it('uses the fixture with every vector the draft publishes', () => {
    expect(fixture.vectors.map((v) => v.bits)).toEqual([1, 2, 1, 2, 4, 8]);
  });

  for (const vector of fixture.vectors) {
    describe(vector.name, () => {
      const expected = expectedStatuses(vector);

      it('decodes to exactly the published statuses', () => {
        const list = StatusList.decode({ bits: vector.bits, lst: vector.lst });
        expect(list.bits).toBe(vector.bits);
        expect(list.size).toBe((vector.decompressed_length_bytes * 8) / vector.bits);
        expect(list.toBytes()).toHaveLength(vector.decompressed_length_bytes);
        if (vector.uncompressed_hex) expect(hex(list.toBytes())).toBe(vector.uncompressed_hex);
        expect(mismatches(list, expected)).toEqual([]);
        // Entries past the published size (padding in the last byte) are VALID.
        for (let i = expected.length; i < list.size; i++) expect(list.get(i)).toBe(TOKEN_STATUS.VALID);
      });

      it('builds the same bytes from the statuses, and round-trips through encode/decode', () => {
        const built = new StatusList(vector.size, vector.bits);
        expected.forEach((status, index) => {
          if (status !== 0) built.set(index, status);
        });
        if (vector.uncompressed_hex) expect(hex(built.toBytes())).toBe(vector.uncompressed_hex);
        const published = StatusList.decode({ bits: vector.bits, lst: vector.lst });
        expect(hex(built.toBytes())).toBe(hex(published.toBytes()));

        const claim = built.encode();
        expect(claim.bits).toBe(vector.bits);
        expect(claim.lst).toMatch(/^[A-Za-z0-9_-]+$/);
        const decoded = StatusList.decode(claim);
        expect(mismatches(decoded, expected)).toEqual([]);
        expect(hex(decoded.toBytes())).toBe(hex(built.toBytes()));
      });
    });
  }
});

describe('StatusList: building and reading', () => {
  it('starts all VALID and sizes the byte array to whole bytes', () => {
    const list = new StatusList(12, 1);
    expect(list.size).toBe(12);
    expect(list.toBytes()).toEqual(new Uint8Array(2));
    for (let i = 0; i < 12; i++) expect(list.get(i)).toBe(TOKEN_STATUS.VALID);
    expect(new StatusList(12, 2).toBytes()).toHaveLength(3);
    expect(new StatusList(3, 4).toBytes()).toHaveLength(2);
    expect(new StatusList(3, 8).toBytes()).toHaveLength(3);
  });

  it('packs entries least-significant bit first (draft §4.1 example)', () => {
    const list = new StatusList(8, 1);
    list.set(0, TOKEN_STATUS.INVALID);
    expect(list.toBytes()).toEqual(Uint8Array.of(0x01));
    list.set(7, TOKEN_STATUS.INVALID);
    expect(list.toBytes()).toEqual(Uint8Array.of(0x81));
  });

  it('overwrites a status without touching its neighbours', () => {
    const list = new StatusList(4, 2);
    for (let i = 0; i < 4; i++) list.set(i, 3);
    list.set(1, TOKEN_STATUS.SUSPENDED);
    list.set(2, TOKEN_STATUS.VALID);
    expect([0, 1, 2, 3].map((i) => list.get(i))).toEqual([3, 2, 0, 3]);
  });

  it('hands out a copy of its bytes, not its state', () => {
    const list = new StatusList(8, 1);
    list.toBytes()[0] = 0xff;
    expect(list.get(0)).toBe(TOKEN_STATUS.VALID);
  });

  it('decodes a one-bit list of 12 to 16 entries (the padding), keeping the 12', () => {
    const list = new StatusList(12, 1);
    list.set(11, TOKEN_STATUS.INVALID);
    const decoded = StatusList.decode(list.encode());
    expect(decoded.size).toBe(16);
    expect(decoded.get(11)).toBe(TOKEN_STATUS.INVALID);
    expect(decoded.get(12)).toBe(TOKEN_STATUS.VALID);
  });

  it('refuses indices and statuses that do not fit', () => {
    const list = new StatusList(10, 2);
    for (const index of [-1, 10, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => list.get(index)).toThrow(RangeError);
      expect(() => list.set(index, 0)).toThrow(RangeError);
    }
    for (const status of [-1, 4, 0.5, Number.NaN]) expect(() => list.set(0, status)).toThrow(RangeError);
    expect(() => new StatusList(8, 1).set(0, TOKEN_STATUS.SUSPENDED)).toThrow(RangeError);
    expect(() => new StatusList(8, 8).set(0, 256)).toThrow(RangeError);
    new StatusList(8, 8).set(0, 255);
  });

  it('refuses a size or bits it cannot represent', () => {
    for (const size of [0, -1, 1.5, Number.NaN]) expect(() => new StatusList(size, 1)).toThrow(RangeError);
    for (const bits of [0, 3, 16]) expect(() => new StatusList(8, bits as StatusBits)).toThrow(RangeError);
  });
});

describe('StatusList: a million entries', () => {
  for (const bits of [1, 2] as const) {
    it(`round-trips 1,000,000 random ${bits}-bit statuses, checking every index`, () => {
      const size = 1_000_000;
      const random = prng(0x5eed + bits);
      const expected = new Uint8Array(size);
      const list = new StatusList(size, bits);
      for (let i = 0; i < size; i++) {
        expected[i] = Math.floor(random() * 2 ** bits);
        list.set(i, expected[i]!);
      }
      const started = performance.now();
      const decoded = StatusList.decode(list.encode());
      expect(decoded.size).toBe(size);
      expect(mismatches(decoded, expected)).toEqual([]);
      expect(performance.now() - started).toBeLessThan(5_000);
    });
  }
});

describe('StatusList.decode: malformed input', () => {
  const valid = new StatusList(16, 1).encode().lst;

  it('refuses bits other than 1, 2, 4 or 8', () => {
    for (const bits of [3, 0, 16, -1, 1.5, Number.NaN, '1', null]) {
      const err = refusal(() => StatusList.decode({ bits, lst: valid } as { bits: number; lst: string }));
      expect(err.code).toBe('invalid_status_list');
      expect(err.message).toMatch(/bits/);
    }
  });

  it('refuses a claim that is not an object or whose lst is not a string', () => {
    for (const claim of [null, undefined, 'eNo', { bits: 1 }, { bits: 1, lst: 42 }, { bits: 1, lst: null }]) {
      refusal(() => StatusList.decode(claim as unknown as { bits: number; lst: string }));
    }
  });

  it('refuses text that is not canonical base64url', () => {
    for (const lst of [
      `${valid}!`, // outside the alphabet (Buffer.from would skip it silently)
      `${valid.slice(0, 4)} ${valid.slice(4)}`, // whitespace
      'eNrbuRgAAhcBXQ==', // padding
      'eNrbuRgAAhcBXR', // non-zero pad bits: decodes to the same bytes as …XQ
      'eNrbuRgAAhcBXQa', // a length no byte string has
      Buffer.from(deflateSync(Buffer.from([0xfb, 0xff]))).toString('base64'), // + and / from base64
    ]) {
      expect(refusal(() => StatusList.decode({ bits: 1, lst })).message).toMatch(/base64url/);
    }
  });

  it('refuses bytes that are not one complete ZLIB stream', () => {
    const stream = deflateSync(Uint8Array.of(0xb9, 0xa3));
    const corrupt = Buffer.from(stream);
    corrupt[corrupt.length - 1]! ^= 0xff; // the Adler-32 checksum
    for (const bytes of [
      Buffer.from('not a status list'),
      deflateRawSync(Uint8Array.of(0xb9, 0xa3)), // DEFLATE without the ZLIB header
      gzipSync(Uint8Array.of(0xb9, 0xa3)),
      stream.subarray(0, stream.length - 3), // truncated
      corrupt,
      Buffer.concat([stream, Buffer.from([0, 1, 2])]), // trailing data
      Buffer.alloc(0),
    ]) {
      expect(refusal(() => StatusList.decode({ bits: 1, lst: lstOf(bytes) })).message).toMatch(/ZLIB/);
    }
  });

  it('refuses an empty list', () => {
    expect(
      refusal(() => StatusList.decode({ bits: 1, lst: lstOf(deflateSync(Buffer.alloc(0))) })).message,
    ).toMatch(/empty/);
  });

  it('stops a decompression bomb at the default limit', () => {
    // 2 MiB + 1 byte of zeros is 16,777,224 one-bit entries, just past the default limit;
    // deflated, the whole claim is about 3 KB.
    const lst = lstOf(deflateSync(Buffer.alloc(DEFAULT_MAX_STATUS_LIST_ENTRIES / 8 + 1), { level: 9 }));
    expect(lst.length).toBeLessThan(4_096);
    const err = refusal(() => StatusList.decode({ bits: 1, lst }));
    expect(err.code).toBe('invalid_status_list');
    expect(err.message).toMatch(/more than 16777216 entries/);
    // zlib itself stopped at the limit (maxOutputLength), rather than inflating the lot first.
    expect((err.cause as { code?: string }).code).toBe('ERR_BUFFER_TOO_LARGE');
    // One byte less is exactly the limit, and accepted.
    const atLimit = lstOf(deflateSync(Buffer.alloc(DEFAULT_MAX_STATUS_LIST_ENTRIES / 8), { level: 9 }));
    expect(StatusList.decode({ bits: 1, lst: atLimit }).size).toBe(DEFAULT_MAX_STATUS_LIST_ENTRIES);
  });

  it('stops a larger bomb at the limit rather than inflating all of it', () => {
    // 64 KB of text that would inflate to 64 MiB of 8-bit entries, four times the limit.
    const lst = lstOf(deflateSync(Buffer.alloc(64 * 1024 ** 2), { level: 9 }));
    expect(lst.length).toBeLessThan(100_000);
    const started = performance.now();
    const err = refusal(() => StatusList.decode({ bits: 8, lst }));
    expect(err.message).toMatch(/more than/);
    expect((err.cause as { code?: string }).code).toBe('ERR_BUFFER_TOO_LARGE');
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('honours a smaller maxEntries, counted in entries whatever the bits', () => {
    for (const bits of ALL_BITS) {
      const fits = new StatusList(64, bits).encode();
      expect(StatusList.decode(fits, { maxEntries: 64 }).size).toBe(64);
      const tooBig = new StatusList(64 + 8 / bits, bits).encode();
      expect(refusal(() => StatusList.decode(tooBig, { maxEntries: 64 })).message).toMatch(/more than 64/);
    }
    // A limit below one byte's worth of entries admits nothing.
    refusal(() => StatusList.decode(new StatusList(8, 1).encode(), { maxEntries: 7 }));
  });

  it('treats a bad maxEntries as a programming error', () => {
    for (const maxEntries of [0, -1, 1.5, Number.NaN]) {
      expect(() => StatusList.decode({ bits: 1, lst: valid }, { maxEntries })).toThrow(RangeError);
    }
  });

  it('answers any bits and any text with a list or a StatusListError, never anything else', () => {
    const base64urlText = fc.string({
      unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ '),
    });
    // Bytes behind a real ZLIB header reach the inflater rather than failing the header check.
    const zlibish = fc
      .uint8Array({ maxLength: 64 })
      .map((tail) => lstOf(Buffer.concat([Buffer.of(0x78, 0xda), tail])));
    fc.assert(
      fc.property(
        fc.oneof(fc.constantFrom(...ALL_BITS), fc.integer()),
        fc.oneof(base64urlText, zlibish),
        (bits, lst) => {
          try {
            const list = StatusList.decode({ bits, lst }, { maxEntries: 1 << 16 });
            expect(list.size).toBeGreaterThan(0);
          } catch (err) {
            expect(err).toBeInstanceOf(StatusListError);
          }
        },
      ),
      { numRuns: 2_000 },
    );
  });
});

describe('StatusList: property', () => {
  for (const bits of ALL_BITS) {
    it(`keeps every status through any sequence of set() and encode/decode (${bits}-bit)`, () => {
      const max = 2 ** bits - 1;
      const scenario = fc
        .integer({ min: 1, max: 300 })
        .chain((size) =>
          fc.tuple(fc.constant(size), fc.array(fc.tuple(fc.nat(size - 1), fc.nat(max)), { maxLength: 500 })),
        );
      fc.assert(
        fc.property(scenario, ([size, operations]) => {
          const list = new StatusList(size, bits);
          const model = new Array<number>(size).fill(TOKEN_STATUS.VALID);
          for (const [index, status] of operations) {
            list.set(index, status);
            model[index] = status;
          }
          expect(mismatches(list, model)).toEqual([]);
          const decoded = StatusList.decode(list.encode());
          expect(decoded.bits).toBe(bits);
          expect(decoded.size).toBe(Math.ceil((size * bits) / 8) * (8 / bits));
          expect(mismatches(decoded, model)).toEqual([]);
          for (let i = size; i < decoded.size; i++) expect(decoded.get(i)).toBe(TOKEN_STATUS.VALID);
        }),
        { numRuns: 200 },
      );
    });
  }
});
