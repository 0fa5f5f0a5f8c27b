import { InvalidArgumentError } from 'commander';

/**
 * Parses one `--attr key=value`. The value may itself contain `=` (only the first one
 * separates); it may be empty. The key may not.
 */
export function parseAttribute(text: string): [key: string, value: string] {
  const at = text.indexOf('=');
  if (at <= 0) {
    throw new InvalidArgumentError(`${JSON.stringify(text)} is not key=value`);
  }
  const key = text.slice(0, at).trim();
  if (key === '') throw new InvalidArgumentError(`${JSON.stringify(text)} has an empty key`);
  return [key, text.slice(at + 1)];
}

/**
 * A commander option parser that collects repeated `--attr k=v` into one record; a key
 * given twice keeps its last value.
 *
 * @example
 * ```ts
 * cmd.option('--attr <key=value>', 'an attribute (repeatable)', collectAttribute);
 * ```
 */
export function collectAttribute(
  text: string,
  previous: Record<string, string> | undefined,
): Record<string, string> {
  const [key, value] = parseAttribute(text);
  return { ...(previous ?? {}), [key]: value };
}

/** A commander option parser that collects a repeatable option into a list. */
export function collectList(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
