/**
 * Which store errors mean "the store cannot be reached or written right now" — a server-side
 * fault the caller may retry (503 `store_unavailable`), never the caller's mistake (4xx) and
 * never an unexplained 500. Both dialects' drivers report them differently; this module alone
 * knows how.
 */

/** Node socket errors on the way to PostgreSQL. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * PostgreSQL SQLSTATEs (Appendix A) for a server that is going away, full, or refusing work:
 * class 08 (connection exception), 53 (insufficient resources), 57 (operator intervention:
 * admin shutdown, crash shutdown, cannot connect now, statement timeout `57014`), 58 (system
 * error), and `25P03` (idle-in-transaction timeout).
 */
const PG_CLASSES = ['08', '53', '57', '58'];
const PG_CODES = new Set(['25P03', '40001', '40P01']);

/** SQLite primary result codes (extended codes start with them): disk full, I/O, locked, read-only. */
const SQLITE_PREFIXES = [
  'SQLITE_FULL',
  'SQLITE_IOERR',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_READONLY',
  'SQLITE_CANTOPEN',
  'SQLITE_NOMEM',
  'SQLITE_PROTOCOL',
];

/** Messages of node-postgres that carry no code. */
const PG_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Query read timeout',
  'Client has encountered a connection error',
  'Cannot use a pool after calling end on the pool',
  'connection timeout',
];

/** True when `err` says the store is unreachable, full, overloaded or too slow. */
export function isStoreUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (SOCKET_CODES.has(code)) return true;
      if (/^[0-9A-Z]{5}$/.test(code) && (PG_CLASSES.includes(code.slice(0, 2)) || PG_CODES.has(code)))
        return true;
      if (SQLITE_PREFIXES.some((p) => code === p || code.startsWith(`${p}_`))) return true;
    }
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string' && PG_MESSAGES.some((m) => message.includes(m))) return true;
    // AggregateError (several addresses refused) and wrapped causes.
    const inner = (e as { errors?: unknown[] }).errors?.[0] ?? (e as { cause?: unknown }).cause;
    e = inner;
  }
  return false;
}
