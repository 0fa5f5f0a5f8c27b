/**
 * Recorded sessions in asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/):
 * newline-delimited JSON, a header object first, then `[time, code, data]` events.
 *
 * `tether exec` uploads a recording in chunks; the broker checks each chunk with
 * {@link checkCastChunk} before it stores it, so a stored recording is always a sequence of
 * whole, well-formed lines. Players read the whole recording back with {@link parseCast}.
 * Pure: no I/O, so the broker, the CLI and tests share one definition.
 */
import { TetherError } from './errors.js';

/** Bounds on what a recording may hold: a chunk is refused past any of them. */
export const CAST_LIMITS = {
  maxWidth: 1000,
  maxHeight: 1000,
  /** UTF-8 bytes of one line, without its newline. */
  maxLineBytes: 65_536,
  maxEnvEntries: 32,
} as const;

/** Longest title, env key or env value, in UTF-16 code units. */
const MAX_TEXT = 256;

export interface CastHeader {
  version: 2;
  width: number;
  height: number;
  /** Epoch seconds of the start of the recording. */
  timestamp?: number;
  /** Seconds: players cap longer pauses at this (asciicast's own field). */
  idle_time_limit?: number;
  title?: string;
  env?: Record<string, string>;
}

/** `o` output, `i` input, `r` resize (`COLSxROWS`), `m` marker. */
export type CastEventCode = 'o' | 'i' | 'r' | 'm';
/** Seconds since the start of the recording, the event's code, its data. */
export type CastEvent = [time: number, code: CastEventCode, data: string];

/** Where a chunk starts: whether it must begin with the header, and the time of the last event before it. */
export interface CastChunkState {
  first: boolean;
  /** False when the privilege records output only: `i` events are refused. */
  allowInput: boolean;
  lastTime: number;
}

const HEADER_KEYS = new Set(['version', 'width', 'height', 'timestamp', 'idle_time_limit', 'title', 'env']);
const EVENT_CODES = new Set<string>(['o', 'i', 'r', 'm']);
const RESIZE = /^[1-9][0-9]{0,3}x[1-9][0-9]{0,3}$/;

/** Seconds to microseconds, as asciinema writes them: keeps lines short and stable. */
function roundTime(time: number): number {
  return Math.round(time * 1e6) / 1e6;
}

/** The header line, with its newline. Keys in a fixed order; absent fields are left out. */
export function formatCastHeader(h: CastHeader): string {
  const line: Record<string, unknown> = { version: h.version, width: h.width, height: h.height };
  if (h.timestamp !== undefined) line['timestamp'] = h.timestamp;
  if (h.idle_time_limit !== undefined) line['idle_time_limit'] = h.idle_time_limit;
  if (h.title !== undefined) line['title'] = h.title;
  if (h.env !== undefined) line['env'] = h.env;
  return `${JSON.stringify(line)}\n`;
}

/** One event line, with its newline; the time rounded to microseconds. */
export function formatCastEvent(e: CastEvent): string {
  return `${JSON.stringify([roundTime(e[0]), e[1], e[2]])}\n`;
}

/** UTF-8 length without allocating (the limit is in bytes, as stored and sent). */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

function refuse(line: number, message: string): never {
  throw new TetherError('invalid_request', `recording line ${line}: ${message}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return Number.isInteger(value) && (value as number) >= min && (value as number) <= max;
}

function readHeader(value: unknown, n: number): CastHeader {
  if (!isPlainObject(value)) refuse(n, 'the recording must begin with a header object');
  for (const key of Object.keys(value)) {
    if (!HEADER_KEYS.has(key)) refuse(n, `the header has an unknown field ${JSON.stringify(key)}`);
  }
  const { version, width, height, timestamp, idle_time_limit, title, env } = value;
  if (version !== 2) refuse(n, 'the header version must be 2');
  if (!isIntegerIn(width, 1, CAST_LIMITS.maxWidth))
    refuse(n, `the header width must be an integer from 1 to ${CAST_LIMITS.maxWidth}`);
  if (!isIntegerIn(height, 1, CAST_LIMITS.maxHeight))
    refuse(n, `the header height must be an integer from 1 to ${CAST_LIMITS.maxHeight}`);
  const header: CastHeader = { version: 2, width, height };
  if (timestamp !== undefined) {
    if (!Number.isSafeInteger(timestamp) || (timestamp as number) < 0)
      refuse(n, 'the header timestamp must be a whole number of seconds since the epoch');
    header.timestamp = timestamp as number;
  }
  if (idle_time_limit !== undefined) {
    if (typeof idle_time_limit !== 'number' || !Number.isFinite(idle_time_limit) || idle_time_limit <= 0)
      refuse(n, 'the header idle_time_limit must be a positive number of seconds');
    header.idle_time_limit = idle_time_limit;
  }
  if (title !== undefined) {
    if (typeof title !== 'string' || title.length > MAX_TEXT)
      refuse(n, `the header title must be a string of at most ${MAX_TEXT} characters`);
    header.title = title;
  }
  if (env !== undefined) {
    if (!isPlainObject(env)) refuse(n, 'the header env must be an object of strings');
    const entries = Object.entries(env);
    if (entries.length > CAST_LIMITS.maxEnvEntries)
      refuse(n, `the header env has more than ${CAST_LIMITS.maxEnvEntries} entries`);
    for (const [key, val] of entries) {
      if (typeof val !== 'string' || key.length > MAX_TEXT || val.length > MAX_TEXT)
        refuse(n, `the header env entries must be strings of at most ${MAX_TEXT} characters`);
    }
    header.env = env as Record<string, string>;
  }
  return header;
}

function readEvent(value: unknown, n: number, allowInput: boolean, lastTime: number): CastEvent {
  if (isPlainObject(value)) refuse(n, 'a header is allowed only as the first line of the recording');
  if (!Array.isArray(value) || value.length !== 3)
    refuse(n, 'an event must be an array of exactly 3 elements: [time, code, data]');
  const [time, code, data] = value as unknown[];
  // JSON cannot carry NaN, but 1e999 parses to Infinity.
  if (typeof time !== 'number' || !Number.isFinite(time) || time < 0)
    refuse(n, 'the event time must be a finite number of seconds, 0 or more');
  if (time < lastTime) refuse(n, `the event time ${time} is before the previous event's (${lastTime})`);
  if (typeof code !== 'string' || !EVENT_CODES.has(code))
    refuse(n, 'the event code must be one of "o", "i", "r", "m"');
  if (code === 'i' && !allowInput)
    refuse(n, 'input events ("i") are refused: this privilege records output only');
  if (typeof data !== 'string') refuse(n, 'the event data must be a string');
  if (code === 'r' && !RESIZE.test(data)) refuse(n, 'a resize event\'s data must be "COLSxROWS"');
  return [time, code as CastEventCode, data];
}

/**
 * Reads the lines of `text`, checking each; calls `onHeader` and `onEvent` as it goes.
 * Line numbers in messages count from 1 within `text`.
 */
function scanCast(
  text: string,
  state: CastChunkState,
  onHeader: (h: CastHeader) => void,
  onEvent: (e: CastEvent) => void,
): { events: number; lastTime: number } {
  if (text === '') {
    // A heartbeat. The first chunk is not one: the header must come first, and a caller
    // that marked the header as received after an empty chunk would refuse it later.
    if (state.first) refuse(1, 'the recording must begin with a header object');
    return { events: 0, lastTime: state.lastTime };
  }
  const lines = text.split('\n');
  // A text ending in '\n' splits into its lines and a last, empty, string.
  if (lines.pop() !== '') refuse(lines.length + 1, 'the line does not end with a newline');
  let events = 0;
  let lastTime = state.lastTime;
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const line = lines[i] as string;
    // Cheap bound first: a UTF-16 unit is at most 3 UTF-8 bytes.
    if (line.length * 3 > CAST_LIMITS.maxLineBytes && utf8Length(line) > CAST_LIMITS.maxLineBytes)
      refuse(n, `the line is longer than ${CAST_LIMITS.maxLineBytes} bytes`);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      refuse(n, 'the line is not valid JSON');
    }
    if (i === 0 && state.first) {
      onHeader(readHeader(value, n));
      continue;
    }
    const event = readEvent(value, n, state.allowInput, lastTime);
    lastTime = event[0];
    events++;
    onEvent(event);
  }
  return { events, lastTime };
}

/**
 * Checks one uploaded chunk: zero or more complete lines, each ending in `\n` (an empty
 * chunk is a heartbeat, except as the first). With `state.first`, the first line is the
 * header. Event times never go back, from `state.lastTime` on. Answers the number of events
 * and the time of the last (to pass as `lastTime` with the next chunk); `state` is not changed.
 *
 * @throws TetherError `invalid_request`, naming the line, on any violation.
 */
export function checkCastChunk(text: string, state: CastChunkState): { events: number; lastTime: number } {
  return scanCast(
    text,
    state,
    () => {},
    () => {},
  );
}

/**
 * A whole recording, header and events, for players. Input events are accepted: what a
 * recording may hold was decided when it was uploaded.
 *
 * @throws TetherError `invalid_request`, naming the line, when it is not valid asciicast v2.
 */
export function parseCast(text: string): { header: CastHeader; events: CastEvent[] } {
  let header: CastHeader | undefined;
  const events: CastEvent[] = [];
  scanCast(
    text,
    { first: true, allowInput: true, lastTime: 0 },
    (h) => {
      header = h;
    },
    (e) => {
      events.push(e);
    },
  );
  // scanCast refuses a text without a header; this satisfies the type checker.
  if (!header) throw new TetherError('invalid_request', 'the recording has no header');
  return { header, events };
}
