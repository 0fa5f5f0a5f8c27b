/** Human-readable output: aligned tables and labelled fields. JSON mode bypasses all of this. */

/** A table with a header row, columns padded to their widest cell; the last column is not padded. */
export function renderTable(headers: string[], rows: string[][]): string {
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
        `${`${label}:`.padEnd(width)} ${value === undefined || value === null || value === '' ? '-' : value}`,
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

/** Writes text plus a newline to stdout. */
export function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Writes a value as pretty JSON to stdout: the `--json` output. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
