import { readFileSync } from 'node:fs';
import {
  BoundSession,
  BrokerClient,
  BrokerError,
  type SessionKey,
  sessionKeyFromJwk,
} from '@tether-broker/client';
import { type Command, InvalidArgumentError } from 'commander';
import type { JWK } from 'jose';
import { CliError, EXIT, isConnectionFailure, unreachable } from '../errors.js';
import { io } from '../io.js';
import { pruneExpired } from '../local-sessions.js';
import { sanitize, warn } from '../output.js';
import { seatCustomerOf, withCustomerSeat } from '../seat.js';
import { Session } from '../session.js';
import { SessionStore, type StoredSession } from '../session-store.js';

interface FetchFlags {
  request?: string;
  data?: string;
  dataFile?: string;
  header?: [string, string][];
  session?: string;
}

/**
 * Refresh when the access token has less than this left. Larger than the SDK's own margin, so
 * the refresh happens here, under the session's lock, and not inside the call.
 */
const REFRESH_MARGIN_MS = 60_000;
/** `BoundSession` refreshes by itself when less than this is left (its own margin). */
const SDK_REFRESH_MARGIN_MS = 30_000;

// RFC 9110 §5.1: a field name is a token.
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const METHOD = /^[A-Za-z]+$/;
/** Set by the session on every call; a value given on the command line would be a mistake. */
const RESERVED_HEADERS = new Set(['authorization', 'dpop']);

/**
 * Parses one `-H 'Name: value'`. The value is trimmed and may be empty; the name must be an
 * HTTP token. `Authorization` and `DPoP` are refused: the session sets them.
 *
 * @example
 * ```ts
 * parseHeader('Accept: application/json'); // ['Accept', 'application/json']
 * ```
 */
export function parseHeader(text: string): [name: string, value: string] {
  const colon = text.indexOf(':');
  if (colon < 0) throw new InvalidArgumentError(`${JSON.stringify(text)} is not 'Name: value'`);
  const name = text.slice(0, colon).trim();
  const value = text.slice(colon + 1).trim();
  if (!FIELD_NAME.test(name)) {
    throw new InvalidArgumentError(`${JSON.stringify(name)} is not a valid header name`);
  }
  if (/[\r\n\0]/.test(value)) {
    throw new InvalidArgumentError(`the value of header ${name} holds a line break or NUL`);
  }
  if (RESERVED_HEADERS.has(name.toLowerCase())) {
    throw new InvalidArgumentError(`${name} is set by the session; it cannot be given with -H`);
  }
  return [name, value];
}

/** A commander parser collecting repeated `-H` into a list of name/value pairs. */
export function collectHeader(text: string, previous: [string, string][] | undefined): [string, string][] {
  return [...(previous ?? []), parseHeader(text)];
}

/**
 * Whether a session may be used at `url`: `match` when one of its audiences is a URL with the
 * same origin; `mismatch` when every audience is a URL and none has that origin (the token
 * would go to a server it is not for); `unknown` when some audience is not a URL, so the
 * origin cannot be compared.
 */
export function audienceMatch(url: URL, audiences: readonly string[]): 'match' | 'mismatch' | 'unknown' {
  let comparable = true;
  for (const audience of audiences) {
    let origin: string;
    try {
      origin = new URL(audience).origin;
    } catch {
      comparable = false;
      continue;
    }
    if (origin === 'null') comparable = false;
    else if (origin === url.origin) return 'match';
  }
  return comparable ? 'mismatch' : 'unknown';
}

/**
 * Which stored session to call `url` with. With `--session`, that one (refused when its
 * audiences are URLs of other origins). Otherwise the live sessions whose audiences include
 * the URL's origin: one is used; of several, the current session if it is among them, else an
 * error listing them. None: the current session if its audiences cannot be compared with an
 * origin (not URLs), else an error. A token is never sent to an origin it is not for.
 */
export function chooseSession(
  sessions: readonly StoredSession[],
  url: URL,
  options: { explicit?: string | undefined; current?: string | undefined },
): StoredSession {
  if (options.explicit !== undefined) {
    const chosen = sessions.find((s) => s.session === options.explicit);
    if (!chosen) {
      throw new CliError(
        'no_session',
        `no key for session ${options.explicit} on this machine`,
        EXIT.refused,
        '`tether session list` shows the sessions held here',
      );
    }
    if (audienceMatch(url, chosen.audiences) === 'mismatch') {
      throw new CliError(
        'audience_mismatch',
        `session ${chosen.session} is for ${chosen.audiences.join(', ')}, not ${url.origin}; nothing was sent`,
        EXIT.usage,
        'call one of its audiences, or use a session of a privilege that names this one',
      );
    }
    return chosen;
  }
  const matching = sessions.filter((s) => audienceMatch(url, s.audiences) === 'match');
  if (matching.length === 1) return matching[0]!;
  if (matching.length > 1) {
    const current = matching.find((s) => s.session === options.current);
    if (current) return current;
    throw new CliError(
      'ambiguous_session',
      `${matching.length} sessions here are for ${url.origin}: ${matching.map((s) => s.session).join(', ')}`,
      EXIT.usage,
      'choose one with --session <id>',
    );
  }
  const current = sessions.find((s) => s.session === options.current);
  if (current && audienceMatch(url, current.audiences) === 'unknown') return current;
  throw new CliError(
    'no_session',
    `no session on this machine is for ${url.origin}`,
    EXIT.refused,
    'start one with `tether session start <request>`; `tether session list` shows yours',
  );
}

function parseTarget(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError('invalid_argument', `${JSON.stringify(text)} is not an absolute URL`, EXIT.usage);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(
      'invalid_argument',
      `only http and https URLs can be fetched, not ${url.protocol}`,
      EXIT.usage,
    );
  }
  return url;
}

function readBody(flags: FetchFlags): { body: Buffer; fromFile: boolean } | undefined {
  if (flags.data !== undefined && flags.dataFile !== undefined) {
    throw new CliError('invalid_argument', 'give -d or --data-file, not both', EXIT.usage);
  }
  if (flags.data !== undefined) return { body: Buffer.from(flags.data, 'utf8'), fromFile: false };
  if (flags.dataFile === undefined) return undefined;
  try {
    // `-` is standard input.
    return { body: readFileSync(flags.dataFile === '-' ? 0 : flags.dataFile), fromFile: true };
  } catch (err) {
    throw new CliError(
      'file_not_found',
      `cannot read ${flags.dataFile} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`,
      EXIT.usage,
    );
  }
}

function looksLikeJson(body: Buffer): boolean {
  try {
    JSON.parse(body.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

/**
 * The request, as curl would make it: GET, or POST when there is a body; redirects are not
 * followed. A body without a
 * `Content-Type` gets `application/json` when it parses as JSON, else `text/plain` (from `-d`)
 * or `application/octet-stream` (from a file).
 */
export function requestInit(flags: FetchFlags): RequestInit & { method: string } {
  const data = readBody(flags);
  const method = (flags.request ?? (data ? 'POST' : 'GET')).toUpperCase();
  if (!METHOD.test(method))
    throw new CliError('invalid_argument', `${method} is not an HTTP method`, EXIT.usage);
  if (data && (method === 'GET' || method === 'HEAD')) {
    throw new CliError('invalid_argument', `a ${method} request cannot carry a body`, EXIT.usage);
  }
  const headers = new Headers();
  for (const [name, value] of flags.header ?? []) headers.append(name, value);
  if (data && !headers.has('content-type')) {
    headers.set(
      'content-type',
      looksLikeJson(data.body)
        ? 'application/json'
        : data.fromFile
          ? 'application/octet-stream'
          : 'text/plain; charset=utf-8',
    );
  }
  // Redirects are not followed (as curl does not): the token and proof are for this URL only.
  return { method, headers, redirect: 'manual', ...(data ? { body: data.body } : {}) };
}

/** The sessions held here that can be read; a broken file only matters when it is asked for by id. */
function readableSessions(store: SessionStore, explicit: string | undefined): StoredSession[] {
  if (explicit !== undefined) return store.has(explicit) ? [store.load(explicit)] : [];
  const sessions: StoredSession[] = [];
  for (const id of store.ids()) {
    try {
      sessions.push(store.load(id));
    } catch {
      // Not usable for an automatic choice.
    }
  }
  return sessions;
}

/**
 * A session rebuilt from its file. Refreshing needs no client authentication (the refresh
 * token and the DPoP proof are the credentials), so the client carries the public key only:
 * it can refresh, and can sign nothing as the principal.
 */
function rebuild(record: StoredSession, key: SessionKey): BoundSession {
  const client = new BrokerClient({
    identity: {
      broker: record.broker,
      tenant: record.tenant,
      principal: record.principal,
      key: key.publicJwk as Record<string, unknown>,
    },
    fetch: io().fetch,
    now: io().now,
  });
  return new BoundSession(
    client,
    key,
    {
      id: record.session,
      hardExpiresAt: Date.parse(record.hard_expires_at),
      audiences: record.audiences,
      // Credentials are handed over once, at activation; a session file never holds them.
      credentials: [],
      credentialsPending: [],
    },
    {
      accessToken: record.access_token,
      refreshToken: record.refresh_token,
      expiresAt: Date.parse(record.expires_at),
    },
    { resourceFetch: io().fetch },
  );
}

const needsRefresh = (record: StoredSession) =>
  io().now() >= Date.parse(record.expires_at) - REFRESH_MARGIN_MS;

function withTokens(record: StoredSession, bound: BoundSession): StoredSession {
  const { accessToken, refreshToken, expiresAt } = bound.tokens;
  return {
    ...record,
    // An approved extension moved it: the refreshed token says so.
    hard_expires_at: new Date(bound.info.hardExpiresAt).toISOString(),
    access_token: accessToken,
    refresh_token: refreshToken,
    expires_at: new Date(expiresAt).toISOString(),
  };
}

/**
 * The session's tokens, refreshed first when the access token is about to expire. Done under
 * the session's lock and re-read inside it, so concurrent `fetch`es refresh once. A refresh the
 * broker refuses (`invalid_grant`: ended, expired, revoked, re-evaluated away) means the
 * session is over: its local key is deleted. An unreachable broker is tolerated while the
 * access token is still valid: enforcement points decide locally.
 */
async function freshTokens(
  store: SessionStore,
  record: StoredSession,
  key: SessionKey,
): Promise<StoredSession> {
  if (!needsRefresh(record)) return record;
  return store.withLock(record.session, async () => {
    const latest = store.load(record.session);
    if (!needsRefresh(latest)) return latest;
    const bound = rebuild(latest, key);
    try {
      await bound.refresh();
    } catch (err) {
      if (err instanceof BrokerError && err.code === 'invalid_grant') {
        store.remove(latest.session);
        throw new CliError(
          'session_ended',
          `session ${latest.session} can no longer be used: ${err.detail}; its local key was deleted`,
          EXIT.refused,
          'ask for access again: `tether request …`, then `tether session start`',
        );
      }
      if (isConnectionFailure(err)) {
        // Only while the SDK will not try to refresh during the call itself.
        if (io().now() < Date.parse(latest.expires_at) - SDK_REFRESH_MARGIN_MS) {
          warn(`warning: cannot reach the broker at ${latest.broker} to refresh; using the current token`);
          return latest;
        }
        throw unreachable(latest.broker);
      }
      throw err;
    }
    const next = withTokens(latest, bound);
    store.save(next);
    return next;
  });
}

/** Saves tokens the SDK refreshed during the call itself (rare: see REFRESH_MARGIN_MS). */
async function saveIfRefreshed(
  store: SessionStore,
  record: StoredSession,
  bound: BoundSession,
): Promise<void> {
  if (bound.tokens.refreshToken === record.refresh_token) return;
  await store.withLock(record.session, async () => store.save(withTokens(record, bound)));
}

function statusLine(response: Response): string {
  const challenge = response.headers.get('www-authenticate');
  const location = response.headers.get('location');
  return [
    `${response.status}${response.statusText ? ` ${response.statusText}` : ''}`,
    ...(challenge ? [`(${challenge})`] : []),
    ...(location ? [`(redirect to ${location}, not followed)`] : []),
  ].join(' ');
}

/**
 * With `--customer`, only the sessions held here in that customer's tenant (the seat's tenant,
 * cached or taken now); otherwise all of them.
 */
async function sessionsInScope(
  store: SessionStore,
  flags: FetchFlags,
  command: Command,
): Promise<StoredSession[]> {
  const sessions = readableSessions(store, flags.session);
  if (seatCustomerOf(command) === undefined) return sessions;
  const { tenant } = (await new Session(command).ready()).identity;
  return sessions.filter((s) => s.tenant === tenant);
}

async function fetchWithSession(url: string, flags: FetchFlags, command: Command): Promise<void> {
  const target = parseTarget(url);
  const init = requestInit(flags);
  const store = SessionStore.fromEnv(io().env);
  pruneExpired(store);
  const chosen = chooseSession(await sessionsInScope(store, flags, command), target, {
    explicit: flags.session,
    current: store.current(),
  });
  const key = await sessionKeyFromJwk(chosen.key as JWK);
  const record = await freshTokens(store, chosen, key);
  const bound = rebuild(record, key);
  let response: Response;
  try {
    response = await bound.fetch(target.href, init);
  } catch (err) {
    if (err instanceof BrokerError && err.code === 'invalid_grant') {
      store.remove(record.session);
      throw new CliError(
        'session_ended',
        `session ${record.session} can no longer be used: ${err.detail}; its local key was deleted`,
        EXIT.refused,
      );
    }
    if (isConnectionFailure(err)) {
      throw new CliError('resource_unreachable', `cannot reach ${target.origin}`, EXIT.unreachable);
    }
    throw err;
  } finally {
    await saveIfRefreshed(store, record, bound);
  }
  const body = Buffer.from(await response.arrayBuffer());
  // Bytes as received into a pipe or a file (like curl); a terminal gets the text made inert:
  // a resource must not drive the operator's terminal (clipboard, screen, bidi).
  const { stdout } = io();
  if (stdout.isTTY) stdout.write(sanitize(body.toString('utf8'), true));
  else stdout.write(body);
  if (!response.ok) {
    throw new CliError(
      `http_${response.status}`,
      `${target.href} answered ${statusLine(response)}`,
      EXIT.refused,
    );
  }
}

/** `tether fetch <url>`: one DPoP-signed HTTP call with a stored session. */
export function registerFetch(program: Command): void {
  withCustomerSeat(program.command('fetch'))
    .description(
      'make a DPoP-signed HTTP call with a session held here (refreshed as needed); the body goes to stdout, a status other than 2xx to stderr and exit 1',
    )
    .argument('<url>', "an absolute http(s) URL at one of the session's audiences")
    .option('-X, --request <method>', 'the HTTP method (default GET, or POST with a body)')
    .option('-d, --data <data>', 'the request body')
    .option('--data-file <file>', 'the request body from a file (- for standard input)')
    .option('-H, --header <header>', "a request header, 'Name: value' (repeatable)", collectHeader)
    .option(
      '--session <id>',
      "the session to use (default: the one whose audiences include the URL's origin; of several, the current one)",
    )
    .action((url: string, flags: FetchFlags, command: Command) => fetchWithSession(url, flags, command));
}
