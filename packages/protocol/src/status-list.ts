/**
 * Token Status List encoding (draft-ietf-oauth-status-list-20, §4).
 *
 * A status list is a byte array holding one `bits`-wide status per Referenced Token, packed
 * least-significant-bit first within each byte, compressed with DEFLATE in the ZLIB format
 * (RFC 1951 inside RFC 1950) and base64url-encoded without padding into the `lst` member.
 *
 * Pure functions over `node:zlib` and `Buffer`: Node's `base64url` encoding is the RFC 4648 §5
 * alphabet without padding, the same encoding `jose`'s `base64url` produces, so this package
 * needs no dependency for it.
 */
import { constants as bufferConstants } from 'node:buffer';
import { deflateSync, inflateSync } from 'node:zlib';

/** The entry widths the draft allows (§4.1). */
export type StatusBits = 1 | 2 | 4 | 8;

const STATUS_BITS: readonly StatusBits[] = [1, 2, 4, 8];

/** The registered Status Type values (draft §7.1); other values up to `2^bits - 1` are application-defined. */
export const TOKEN_STATUS = { VALID: 0, INVALID: 1, SUSPENDED: 2 } as const;

/**
 * The most entries {@link StatusList.decode} accepts unless told otherwise: 2^24 entries is
 * at most 16 MiB of decompressed bytes (at 8 bits each), far above any list Tether issues.
 */
export const DEFAULT_MAX_STATUS_LIST_ENTRIES = 16_777_216;

/** `lst` is base64url without padding: this alphabet only. */
const BASE64URL = /^[A-Za-z0-9_-]*$/;

function isStatusBits(value: unknown): value is StatusBits {
  return STATUS_BITS.includes(value as StatusBits);
}

/**
 * Malformed status list input to {@link StatusList.decode}. The message is safe to show: it
 * never echoes the input.
 */
export class StatusListError extends Error {
  readonly code = 'invalid_status_list' as const;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StatusListError';
  }
}

/**
 * A fixed-size list of token statuses, `bits` per entry.
 *
 * @example
 * ```ts
 * const list = new StatusList(1024, 2);
 * list.set(7, TOKEN_STATUS.SUSPENDED);
 * const claim = list.encode(); // { bits: 2, lst: 'eNr…' }, the `status_list` claim
 * StatusList.decode(claim).get(7); // 2
 * ```
 */
export class StatusList {
  /** The number of entries; indices run from 0 to `size - 1`. */
  readonly size: number;
  readonly bits: StatusBits;
  readonly #bytes: Uint8Array;
  readonly #perByte: number;
  readonly #mask: number;

  /** A list of `size` entries, all {@link TOKEN_STATUS.VALID}. */
  constructor(size: number, bits: StatusBits) {
    if (!isStatusBits(bits)) throw new RangeError('bits must be 1, 2, 4 or 8');
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError('size must be a positive integer');
    this.size = size;
    this.bits = bits;
    this.#perByte = 8 / bits;
    this.#mask = (1 << bits) - 1;
    this.#bytes = new Uint8Array(Math.ceil(size / this.#perByte));
  }

  /**
   * Decodes a `status_list` claim (`{ bits, lst }`). The list's size is what the bytes hold:
   * `bytes × 8 / bits` entries, so a list of 12 two-bit entries decodes to 12, one of 12
   * one-bit entries to 16 (the padding entries are VALID).
   *
   * Inflation stops at `maxEntries` (default {@link DEFAULT_MAX_STATUS_LIST_ENTRIES}), so a
   * small `lst` cannot make us allocate gigabytes.
   *
   * @throws {StatusListError} when `bits` is not 1, 2, 4 or 8, `lst` is not canonical
   *   base64url, not one complete ZLIB stream, empty, or larger than `maxEntries`.
   */
  static decode(claim: { bits: number; lst: string }, options: { maxEntries?: number } = {}): StatusList {
    const maxEntries = options.maxEntries ?? DEFAULT_MAX_STATUS_LIST_ENTRIES;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError('maxEntries must be a positive integer');
    }
    if (typeof claim !== 'object' || claim === null)
      throw new StatusListError('status_list must be an object');
    const { bits, lst } = claim;
    if (!isStatusBits(bits)) throw new StatusListError('bits must be 1, 2, 4 or 8');
    if (typeof lst !== 'string') throw new StatusListError('lst must be a string');

    const compressed = decodeBase64url(lst);
    // bytes ≤ ⌊maxEntries × bits / 8⌋ is exactly size ≤ maxEntries.
    const bytes = inflateBounded(compressed, Math.floor((maxEntries * bits) / 8), (cause) => {
      return new StatusListError(`the status list holds more than ${maxEntries} entries`, { cause });
    });
    const size = (bytes.length * 8) / bits;
    if (size === 0) throw new StatusListError('the status list is empty');

    const list = new StatusList(size, bits);
    list.#bytes.set(bytes);
    return list;
  }

  /** The status at `index`. @throws {RangeError} when `index` is not an integer in `[0, size)`. */
  get(index: number): number {
    this.#checkIndex(index);
    const shift = (index % this.#perByte) * this.bits;
    return (this.#bytes[Math.floor(index / this.#perByte)]! >> shift) & this.#mask;
  }

  /**
   * Sets the status at `index`.
   * @throws {RangeError} when `index` is out of range or `status` does not fit in `bits`.
   */
  set(index: number, status: number): void {
    this.#checkIndex(index);
    if (!Number.isInteger(status) || status < 0 || status > this.#mask) {
      throw new RangeError(`status must be an integer from 0 to ${this.#mask} for ${this.bits}-bit entries`);
    }
    const byte = Math.floor(index / this.#perByte);
    const shift = (index % this.#perByte) * this.bits;
    this.#bytes[byte] = (this.#bytes[byte]! & ~(this.#mask << shift)) | (status << shift);
  }

  /** The `status_list` claim: ZLIB at the highest level (draft §4.1 recommends it), base64url without padding. */
  encode(): { bits: StatusBits; lst: string } {
    return { bits: this.bits, lst: deflateSync(this.#bytes, { level: 9 }).toString('base64url') };
  }

  /** A copy of the uncompressed byte array; the last byte's unused entries are zero. */
  toBytes(): Uint8Array {
    return this.#bytes.slice();
  }

  #checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) {
      throw new RangeError(`index must be an integer from 0 to ${this.size - 1}`);
    }
  }
}

/**
 * Strict base64url: `Buffer.from(s, 'base64url')` silently skips characters outside the
 * alphabet and ignores stray trailing bits, so we check the alphabet and that re-encoding
 * gives back the same text (which rejects padding, impossible lengths and non-zero pad bits).
 */
function decodeBase64url(text: string): Buffer {
  if (!BASE64URL.test(text)) throw new StatusListError('lst is not base64url without padding');
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) throw new StatusListError('lst is not canonical base64url');
  return bytes;
}

/**
 * Inflates one complete ZLIB stream, refusing to produce more than `maxBytes` (zlib stops at
 * `maxOutputLength` rather than allocating the whole bomb) and refusing bytes after the stream.
 */
function inflateBounded(
  compressed: Buffer,
  maxBytes: number,
  tooLarge: (cause?: unknown) => StatusListError,
): Buffer {
  // Node requires maxOutputLength ≥ 1; a zero budget still rejects every non-empty list below.
  const maxOutputLength = Math.min(Math.max(maxBytes, 1), bufferConstants.MAX_LENGTH);
  let result: { buffer: Buffer; engine: { bytesWritten: number } };
  try {
    // `info: true` returns the engine too, whose `bytesWritten` counts the input consumed.
    result = inflateSync(compressed, { maxOutputLength, info: true }) as unknown as typeof result;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(err);
    throw new StatusListError('lst is not a valid ZLIB (RFC 1950) stream', { cause: err });
  }
  if (result.engine.bytesWritten !== compressed.length) {
    throw new StatusListError('lst has data after the end of the ZLIB stream');
  }
  if (result.buffer.length > maxBytes) throw tooLarge();
  return result.buffer;
}
