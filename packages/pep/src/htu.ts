/**
 * `htu` comparison for DPoP proofs (RFC 9449 §4.3 step 9).
 *
 * The claim and the request URL are compared after Syntax-Based (RFC 3986 §6.2.2) and
 * Scheme-Based (§6.2.3) Normalization, ignoring any query and fragment on either side.
 * Anything that is not an absolute `http`/`https` URI with a plain host is refused rather than
 * guessed at: no userinfo, no whitespace or control characters, no backslashes, no non-ASCII.
 */

// RFC 3986 `unreserved`: percent-encoded forms of these are decoded (§6.2.2.2).
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
// Characters a path may carry literally: unreserved, sub-delims, ':', '@' and '/'. Any other
// printable character is percent-encoded, so `{` and `%7B` compare equal.
const PATH_LITERAL = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]$/;
// Printable ASCII except the backslash, which WHATWG URL parsing would silently read as '/'.
const ACCEPTABLE_CHARACTERS = /^[\x21-\x5B\x5D-\x7E]+$/;
const SCHEME_AND_AUTHORITY = /^(https?):\/\/([^/?#]*)/i;
const PERCENT_ENCODED = /%(?![0-9A-Fa-f]{2})/;

/**
 * The normalised form of an absolute http(s) URI, without query and fragment, or `undefined`
 * when the value is not one.
 *
 * Scheme and host are lower-cased, a default port (80 for http, 443 for https) or an empty port
 * is dropped, an empty path becomes `/`, dot segments are removed, percent-encodings are
 * upper-cased and those of unreserved characters decoded.
 *
 * @example
 * ```ts
 * normalizeHtu('HTTPS://Server.Example.COM:443/a/%7euser?x=1'); // 'https://server.example.com/a/~user'
 * ```
 */
export function normalizeHtu(uri: string): string | undefined {
  if (typeof uri !== 'string' || !ACCEPTABLE_CHARACTERS.test(uri)) return undefined;
  const withoutQuery = uri.split(/[?#]/, 1)[0] ?? '';
  const authority = SCHEME_AND_AUTHORITY.exec(withoutQuery)?.[2];
  // An empty authority ("https:///x") or userinfo ("https://user@x") is not a plain target URI.
  if (authority === undefined || authority === '' || authority.includes('@')) return undefined;
  if (PERCENT_ENCODED.test(withoutQuery)) return undefined;
  let url: URL;
  try {
    url = new URL(withoutQuery);
  } catch {
    return undefined;
  }
  const path = normalizePath(url.pathname);
  return `${url.protocol}//${url.host}${path}`;
}

// Normalised forms by raw text. A PEP sees few distinct URLs (its routes, and one `htu` per
// route in every proof), so each is normalised once. Both sides are chosen by the caller, so
// the memo is bounded in entries and in the length of what it keeps.
const NORMALIZED = new Map<string, string | null>();
const NORMALIZED_MAX_ENTRIES = 1024;
const NORMALIZED_MAX_LENGTH = 2048;

/** {@link normalizeHtu}, remembered for recently seen values. */
export function normalizeHtuCached(uri: string): string | undefined {
  const known = NORMALIZED.get(uri);
  if (known !== undefined) return known ?? undefined;
  const normalized = normalizeHtu(uri);
  if (typeof uri === 'string' && uri.length <= NORMALIZED_MAX_LENGTH) {
    // Forget the oldest when full: a flood of distinct URLs costs a normalisation each, as before.
    if (NORMALIZED.size >= NORMALIZED_MAX_ENTRIES) {
      const oldest = NORMALIZED.keys().next();
      if (!oldest.done) NORMALIZED.delete(oldest.value);
    }
    NORMALIZED.set(uri, normalized ?? null);
  }
  return normalized;
}

/**
 * Whether a proof's `htu` claim names the request URL, per RFC 9449 §4.3.
 *
 * @param htu the `htu` claim of the proof.
 * @param requestUrl the request's URL as the public sees it (public base URL + path).
 *
 * @example
 * ```ts
 * htuMatches('https://api.example.com/v1/x', 'https://API.example.com:443/v1/x?page=2'); // true
 * ```
 */
export function htuMatches(htu: string, requestUrl: string): boolean {
  const claim = normalizeHtu(htu);
  return claim !== undefined && claim === normalizeHtu(requestUrl);
}

/** Percent-encoding normalization of a path that WHATWG URL parsing already dot-resolved. */
function normalizePath(path: string): string {
  let out = '';
  for (let i = 0; i < path.length; i += 1) {
    const char = path[i]!;
    if (char === '%') {
      const hex = path.slice(i + 1, i + 3).toUpperCase();
      const decoded = String.fromCharCode(Number.parseInt(hex, 16));
      out += UNRESERVED.test(decoded) ? decoded : `%${hex}`;
      i += 2;
    } else if (PATH_LITERAL.test(char)) {
      out += char;
    } else {
      out += `%${char.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return out === '' ? '/' : out;
}
