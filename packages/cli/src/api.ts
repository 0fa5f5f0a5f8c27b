/**
 * Helpers for calling the broker API. The shapes of its answers are `@tether-broker/protocol`'s
 * (`SessionView`, `RequestView`, …): the types of the schemas the broker serialises with.
 */

/** A query string from the options that are set. */
export function query(params: Record<string, string | number | boolean | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== false) search.set(key, String(value));
  }
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}

/** A path segment, escaped. */
export const seg = (value: string) => encodeURIComponent(value);
