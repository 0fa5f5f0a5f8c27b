import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CliError, EXIT } from './errors.js';

/** One policy cut out of a `.cedar` file. */
export interface CedarEntry {
  id: string;
  text: string;
}

/**
 * The file's text twice, with the same length: `noComments` has comments blanked out;
 * `masked` also blanks the insides of string literals. Offsets in both match the original,
 * so a match found in `masked` (where no string or comment can fool it) reads from the others.
 */
interface Scan {
  noComments: string;
  masked: string;
  /** Offsets (exclusive) where statements end: just after their `;`. */
  ends: number[];
}

const blank = (ch: string) => (ch === '\n' ? '\n' : ' ');

function scanCedar(text: string): Scan {
  let noComments = '';
  let masked = '';
  const ends: number[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '/' && text[i + 1] === '/') {
      // Cedar has line comments only.
      while (i < text.length && text[i] !== '\n') {
        noComments += ' ';
        masked += ' ';
        i++;
      }
    } else if (ch === '"') {
      const { end, terminated } = endOfString(text, i);
      const literal = text.slice(i, end);
      noComments += literal;
      const last = terminated ? literal.length - 1 : literal.length;
      masked += [...literal].map((c, k) => (k === 0 || k === last ? c : blank(c))).join('');
      i = end;
    } else {
      noComments += ch;
      masked += ch;
      i++;
      if (ch === ';') ends.push(i);
    }
  }
  return { noComments, masked, ends };
}

/** Offset just past the string literal starting at `start` (the end of the text if unterminated). */
function endOfString(text: string, start: number): { end: number; terminated: boolean } {
  let i = start + 1;
  while (i < text.length) {
    if (text[i] === '\\') i += 2;
    else if (text[i] === '"') return { end: i + 1, terminated: true };
    else i++;
  }
  return { end: text.length, terminated: false };
}

/** A comment on the same line right after a policy's `;` belongs to that policy. */
function extendOverTrailingComment(text: string, end: number): number {
  const match = /^[ \t]*\/\/[^\n]*/.exec(text.slice(end));
  return match ? end + match[0].length : end;
}

/** The `@id("…")` annotation's value, looked for only before `permit` / `forbid`. */
function annotatedId(scan: Scan, start: number, end: number): string | undefined {
  const masked = scan.masked.slice(start, end);
  const effect = /\b(permit|forbid)\s*\(/.exec(masked);
  const head = masked.slice(0, effect ? effect.index : masked.length);
  const at = /@id\s*\(\s*"/.exec(head);
  if (!at) return undefined;
  const quote = start + at.index + at[0].length - 1;
  const literal = scan.noComments.slice(quote, endOfString(scan.noComments, quote).end);
  try {
    return JSON.parse(literal) as string;
  } catch {
    return literal.slice(1, -1);
  }
}

/** A file name made into an acceptable policy-id stem. */
function idStem(fileStem: string): string {
  const cleaned = fileStem.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return cleaned === '' ? 'policy' : cleaned;
}

/**
 * Splits a `.cedar` file holding several policies into one entry per policy, as the API's
 * id → text map wants. The id is the policy's `@id("…")` annotation, else `<stem>-<n>`
 * (n counts the file's policies from 1). A `;` inside a string or a `//` comment does not
 * end a policy. Text after the last `;` that is not just comments becomes an entry of its
 * own, so the validator reports it rather than this function dropping it.
 *
 * @example
 * ```ts
 * splitCedarPolicies('@id("a") permit(principal, action, resource);', 'base');
 * // [{ id: 'a', text: '@id("a") permit(principal, action, resource);' }]
 * ```
 */
export function splitCedarPolicies(text: string, fileStem: string): CedarEntry[] {
  const scan = scanCedar(text);
  const ranges: [number, number][] = [];
  let start = 0;
  for (const rawEnd of scan.ends) {
    const end = extendOverTrailingComment(text, rawEnd);
    if (end <= start) continue;
    // A stray `;` with nothing before it is not a policy.
    if (scan.masked.slice(start, end).replace(';', '').trim() !== '') ranges.push([start, end]);
    start = end;
  }
  if (scan.masked.slice(start).trim() !== '') ranges.push([start, text.length]);
  return ranges.map(([from, to], index) => ({
    id: annotatedId(scan, from, to) ?? `${idStem(fileStem)}-${index + 1}`,
    text: text.slice(from, to).trim(),
  }));
}

/** The `.cedar` files a path names: the file itself, or a directory's `*.cedar` files in name order. */
export function cedarFilesAt(path: string): string[] {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch {
    throw new CliError('file_not_found', `no such file or directory: ${path}`, EXIT.usage);
  }
  if (!isDirectory) return [path];
  const files = readdirSync(path)
    .filter((name) => name.endsWith('.cedar'))
    .sort()
    .map((name) => join(path, name));
  if (files.length === 0) {
    throw new CliError('file_not_found', `${path} holds no .cedar files`, EXIT.usage);
  }
  return files;
}

/** Reads a `.cedar` file or a directory of them into the API's id → text map. Ids must be unique. */
export function readPolicySet(path: string): Record<string, string> {
  const policies: Record<string, string> = {};
  const origin: Record<string, string> = {};
  for (const file of cedarFilesAt(path)) {
    const stem = basename(file).replace(/\.cedar$/, '');
    for (const entry of splitCedarPolicies(readFileSync(file, 'utf8'), stem)) {
      if (Object.hasOwn(policies, entry.id)) {
        throw new CliError(
          'duplicate_policy_id',
          `policy id ${JSON.stringify(entry.id)} appears in ${origin[entry.id]} and in ${file}`,
          EXIT.usage,
          'give each policy a unique @id("…") annotation',
        );
      }
      policies[entry.id] = entry.text;
      origin[entry.id] = file;
    }
  }
  return policies;
}
