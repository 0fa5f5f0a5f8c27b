/**
 * Human-readable output: aligned tables and labelled fields. Everything the CLI prints goes
 * through here (`say`, `warn`, `printJson`), and every string is made inert for a terminal
 * first: a name, a comment or an error detail chosen by someone else must not move the
 * cursor, clear the screen, set the clipboard (OSC 52), open links or reorder text (bidi).
 */
import { io } from './io.js';

/**
 * Escape sequences as terminals read them (ECMA-48): CSI `ESC [ params intermediates final`;
 * OSC, DCS, SOS, PM and APC strings up to BEL or ST (or the end of the line, where a terminal
 * would swallow the rest); any other `ESC` + intermediates + final byte; a lone `ESC`.
 */
const ESCAPE_SEQUENCE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  /\u001b(?:\[[0-?]*[ -/]*[@-~]?|[\]PX^_][^\u0007\u001b\n]*(?:\u0007|\u001b\\)?|[ -/]*[0-~]?)/g;
/**
 * Single characters a terminal acts on or that reorder what is shown: C0 controls but tab and
 * newline, DEL, C1 controls (8-bit CSI, OSC, … included), the bidi embeddings, overrides,
 * isolates and marks, and the Unicode line and paragraph separators.
 */
const CONTROL =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** The same characters, for `--json`: escaped rather than removed, so the value is unchanged. */
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** Shown where a control character was: the value visibly held something that was not printed. */
const REPLACEMENT = '\ufffd';

/**
 * `text` made safe to print: escape sequences removed, other controls replaced by U+FFFD.
 * `multiline` keeps newlines and tabs (whole messages); without it (one table cell, one
 * field) they become spaces, so a value cannot forge lines of output of its own.
 */
export function sanitize(text: string, multiline = false): string {
  const stripped = text.replace(ESCAPE_SEQUENCE, '').replace(CONTROL, REPLACEMENT);
  return multiline ? stripped : stripped.replace(/[\t\n]/g, ' ');
}

/** A table with a header row, columns padded to their widest cell; the last column is not padded. */
export function renderTable(headers: string[], unsafeRows: string[][]): string {
  const rows = unsafeRows.map((row) => row.map((cell) => sanitize(cell ?? '')));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** `label: value` lines, labels aligned; empty values are shown as `-`. */
export function renderFields(fields: [label: string, value: string | undefined | null][]): string {
  const width = Math.max(...fields.map(([label]) => label.length)) + 1;
  return fields
    .map(
      ([label, value]) =>
        `${`${label}:`.padEnd(width)} ${value === undefined || value === null || value === '' ? '-' : sanitize(value)}`,
    )
    .join('\n');
}

/** `a, b, c`, or `-` for none. */
export function list(values: readonly string[] | undefined): string {
  return values && values.length > 0 ? values.join(', ') : '-';
}

/** `k=v, k2=v2`, or `-` for none. */
export function attributes(record: Record<string, string> | undefined): string {
  const entries = Object.entries(record ?? {});
  return entries.length > 0 ? entries.map(([k, v]) => `${k}=${v}`).join(', ') : '-';
}

/** An ISO timestamp shortened for a table: `2026-01-05 10:00:00Z`. */
export function shortTime(iso: string | null | undefined): string {
  if (!iso) return '-';
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** Writes text plus a newline to stdout, made safe for a terminal. */
export function say(text: string): void {
  io().stdout.write(`${sanitize(text, true)}\n`);
}

/** Writes text plus a newline to stderr (errors, progress, warnings), made safe for a terminal. */
export function warn(text: string): void {
  io().stderr.write(`${sanitize(text, true)}\n`);
}

/**
 * A value as pretty JSON: the `--json` output. `JSON.stringify` escapes C0 controls (ESC
 * included) but not DEL, C1 or bidi characters; those are escaped too (`\u009b`), which
 * keeps the JSON and its values unchanged and the terminal inert.
 */
export function toJson(value: unknown): string {
  return (JSON.stringify(value, null, 2) ?? 'null').replace(
    JSON_UNSAFE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Writes a value as pretty JSON to stdout: the `--json` output. */
export function printJson(value: unknown): void {
  io().stdout.write(`${toJson(value)}\n`);
}
