import { BoundSession, BrokerError, exportSessionKey, generateSessionKey } from '@tether-broker/client';
import type { SessionReceipt } from '@tether-broker/protocol';
import type { RequestView, SessionList, SessionView } from '@tether-broker/protocol/api';
import { type Command, Option } from 'commander';
import { query, seg } from '../api.js';
import { approvedRequestForTicket } from '../approved-requests.js';
import { formatDuration, parseDuration } from '../duration.js';
import { CliError, EXIT } from '../errors.js';
import { io } from '../io.js';
import { expiryText, noteRemoved, pruneExpired, targetSession } from '../local-sessions.js';
import { lookUpNames, type Names } from '../names.js';
import { list, printJson, renderFields, renderTable, say, shortTime, warn } from '../output.js';
import { receiptDetails, waitForEnforcement } from '../receipt.js';
import { withCustomerSeat } from '../seat.js';
import { Session } from '../session.js';
import { SessionStore, type StoredSession } from '../session-store.js';
import { extendSession, syncStoredExpiry } from './session-extend.js';

interface StartFlags {
  ticket?: string;
}

interface ListFlags {
  state?: 'active' | 'ended';
  all?: boolean;
  principal?: string;
  ticket?: string;
  limit?: number;
}

interface EndFlags {
  reason: 'completed' | 'revoked';
  note?: string;
  waitEnforced?: boolean;
  /** Seconds. */
  timeout: number;
}

/** `tether session …`: the live, key-bound privilege of one task. */
export function registerSession(program: Command): void {
  const session = program
    .command('session')
    .description('start a session from an approved request, list, show and end sessions');
  withCustomerSeat(session.command('start'))
    .description(
      'activate an approved request into a session bound to a fresh key (stored 0600 under $TETHER_HOME/sessions)',
    )
    .argument('[request]', 'the approved request id')
    .option(
      '--ticket <ref>',
      'your one approved, not yet activated request for this ticket, instead of an id',
    )
    .action(start);
  withCustomerSeat(session.command('list'))
    .description('list your sessions (KEY says which ones this machine holds a key for)')
    .addOption(new Option('--state <state>', 'only in this state').choices(['active', 'ended']))
    .option('--all', "every principal's sessions (admins and auditors), not just yours")
    .option('--principal <name>', "only this principal's sessions (admins and auditors)")
    .option('--ticket <ref>', 'only sessions for this ticket')
    .option('--limit <n>', 'at most this many (default 100)', (v) => Number.parseInt(v, 10))
    .action(listSessions);
  withCustomerSeat(session.command('show'))
    .description('show a session (default: the current one)')
    .argument('[id]', 'the session id')
    .action(show);
  withCustomerSeat(session.command('end'))
    .description('end a session (default: the current one) and delete its local key')
    .argument('[id]', 'the session id')
    .addOption(
      new Option('--reason <reason>', 'why it ends').choices(['completed', 'revoked']).default('completed'),
    )
    .option('--note <text>', 'a note recorded with the end')
    .option(
      '--wait-enforced',
      'then wait until every live enforcement point has applied the end, and print the receipt (exit 1 if the timeout passes first)',
    )
    .option('--timeout <duration>', 'how long --wait-enforced waits, e.g. 30s, 2m', parseDuration, 30)
    .action(end);
  withCustomerSeat(session.command('receipt'))
    .description(
      'when a session ended, and which enforcement points have applied the end (default: the current one)',
    )
    .argument('[id]', 'the session id')
    .action(receipt);
  withCustomerSeat(session.command('extend'))
    .description(
      'ask for more time for a session (default: the current one); approvers review it like a request (`tether approve <request>`), and once approved the session keeps its key and tokens',
    )
    .argument('[id]', 'the session id')
    .requiredOption('--by <duration>', 'how much longer, e.g. 30m, 1h', parseDuration)
    .option('--justification <text>', 'why it needs longer', 'more time for the same task')
    .option('--wait', 'wait until the extension is approved, denied or expires (exit 0 only if approved)')
    .action(extendSession);
}

/**
 * The request `session start` activates: the id given (read first, so that a request in the
 * wrong state gets a clear answer), or the caller's one approved request for `--ticket` that
 * has no session yet and can still be activated. Several candidates is an error that lists
 * them, never a guess.
 */
async function requestToActivate(
  session: Session,
  id: string | undefined,
  ticket: string | undefined,
): Promise<RequestView> {
  if (id && ticket)
    throw new CliError('invalid_argument', 'give a request id or --ticket, not both', EXIT.usage);
  if (id) return session.call<RequestView>('GET', `/v1/requests/${seg(id)}`);
  if (!ticket) throw new CliError('invalid_argument', 'give a request id, or --ticket <ref>', EXIT.usage);
  return approvedRequestForTicket(session, ticket, { ambiguousHint: 'name one by its id' });
}

async function start(id: string | undefined, flags: StartFlags, command: Command): Promise<void> {
  const session = new Session(command);
  const store = SessionStore.fromEnv(session.env);
  const request = await requestToActivate(session, id, flags.ticket);
  // Extractable so that it can be stored: `fetch`, a later process, signs with it.
  const key = await generateSessionKey({ extractable: true });
  const bound = await session.answer((client) => BoundSession.activate(client, request.id, key));
  const { broker, tenant, principal } = session.identity;
  const record: StoredSession = {
    broker,
    tenant,
    principal,
    session: bound.info.id,
    request: request.id,
    privilege: request.privilege,
    audiences: bound.info.audiences,
    hard_expires_at: new Date(bound.info.hardExpiresAt).toISOString(),
    key: (await exportSessionKey(bound.key)) as Record<string, unknown>,
    access_token: bound.tokens.accessToken,
    refresh_token: bound.tokens.refreshToken,
    expires_at: new Date(bound.tokens.expiresAt).toISOString(),
  };
  // Stored before anything else can fail: the tokens exist nowhere else.
  store.save(record);
  store.setCurrent(record.session);
  const view = await session.call<SessionView>('GET', `/v1/sessions/${seg(record.session)}`);
  // Downstream credentials are answered once, at activation: shown now or never (not stored).
  const { credentials, credentialsPending } = bound.info;
  if (session.json) return printJson({ ...view, credentials, credentials_pending: credentialsPending });
  const names = await lookUpNames(session, ['principals', 'privileges']);
  say(`session ${view.id} started\n`);
  say(sessionDetails(view, names, store));
  if (credentials.length > 0) {
    say('\ncredentials (shown once; the broker keeps no copy):');
    say(
      renderTable(
        ['CONNECTOR', 'USERNAME', 'PASSWORD', 'VALID UNTIL'],
        credentials.map((c) => [c.connector, c.username, c.secret, shortTime(c.valid_until)]),
      ),
    );
  }
  if (credentialsPending.length > 0)
    warn(
      `still minting: ${credentialsPending.join(', ')} (tether exec collects them; or POST /v1/sessions/${view.id}/credentials)`,
    );
  const [audience] = view.audiences;
  say('\nnext:');
  say(`  tether fetch ${audience ?? '<url>'}/…   # a DPoP-signed call with this session`);
  say('  tether session end              # when the task is done: ends it and deletes the key');
}

/** The KEY column: whether this machine holds the session's key, and whether it is the current one. */
function localMark(store: SessionStore, id: string, current: string | undefined): string {
  if (!store.has(id)) return '-';
  return id === current ? 'local, current' : 'local';
}

function stateText(s: SessionView): string {
  return s.state === 'active' ? 'active' : `${s.state}${s.end_reason ? ` (${s.end_reason})` : ''}`;
}

/** One session in full. */
export function sessionDetails(s: SessionView, names: Names, store: SessionStore): string {
  const grant = s.authorization_details[0];
  const local = store.has(s.id)
    ? `${store.path(s.id)} (0600)${store.current() === s.id ? ', current' : ''}`
    : 'none on this machine';
  return renderFields([
    ['session', s.id],
    ['state', stateText(s)],
    ['principal', names.of(s.principal)],
    ['privilege', names.of(s.privilege)],
    ['actions', list(grant?.actions)],
    ['resources', list(grant?.resources)],
    ['audiences', list(s.audiences)],
    ['ticket', s.ticket],
    ['request', s.request],
    ['activated', shortTime(s.activated_at)],
    ...(s.idle_timeout === null || s.idle_timeout === undefined
      ? []
      : [
          [
            'idle timeout',
            `${formatDuration(s.idle_timeout)}, last activity ${shortTime(s.last_activity_at)}`,
          ] as [string, string],
        ]),
    s.state === 'active'
      ? ['hard expiry', expiryText(s.hard_expires_at, io().now())]
      : ['ended', `${shortTime(s.ended_at)}${s.ended_by ? ` by ${names.of(s.ended_by)}` : ''}`],
    ['key', local],
  ]);
}

/** The broker says a session has ended: its local key goes too. */
function forgetEnded(store: SessionStore, sessions: SessionView[]): void {
  for (const s of sessions) {
    if (s.state !== 'active' && store.remove(s.id))
      noteRemoved(s.id, `it has ended: ${s.end_reason ?? s.state}`);
  }
}

async function listSessions(flags: ListFlags, command: Command): Promise<void> {
  const session = new Session(command);
  const store = SessionStore.fromEnv(session.env);
  if (flags.all && flags.principal)
    throw new CliError('invalid_argument', 'give --all or --principal, not both', EXIT.usage);
  // The broker shows admins and auditors everyone's sessions; the default is one's own.
  const principal = flags.all ? undefined : (flags.principal ?? (await session.ready()).identity.principal);
  const answer = await session.call<SessionList>(
    'GET',
    `/v1/sessions${query({ state: flags.state, principal, ticket: flags.ticket, limit: flags.limit })}`,
  );
  // Expiries first: an extended session's key must not be pruned at its old hard expiry.
  for (const s of answer.sessions) await syncStoredExpiry(store, s);
  pruneExpired(store);
  forgetEnded(store, answer.sessions);
  if (session.json) return printJson(answer);
  if (answer.sessions.length === 0) return say('no sessions');
  const names = await lookUpNames(session, ['principals', 'privileges']);
  const current = store.current();
  const now = io().now();
  say(
    renderTable(
      ['ID', 'PRINCIPAL', 'PRIVILEGE', 'TICKET', 'STATE', 'HARD EXPIRY / ENDED', 'KEY'],
      answer.sessions.map((s) => [
        s.id,
        names.of(s.principal),
        names.of(s.privilege),
        s.ticket ?? '-',
        stateText(s),
        s.state === 'active' ? expiryText(s.hard_expires_at, now) : shortTime(s.ended_at),
        localMark(store, s.id, current),
      ]),
    ),
  );
}

async function show(id: string | undefined, _f: unknown, command: Command): Promise<void> {
  const session = new Session(command);
  const store = SessionStore.fromEnv(session.env);
  const target = targetSession(store, id);
  const view = await session.call<SessionView>('GET', `/v1/sessions/${seg(target)}`);
  await syncStoredExpiry(store, view);
  pruneExpired(store);
  forgetEnded(store, [view]);
  if (session.json) return printJson(view);
  say(sessionDetails(view, await lookUpNames(session, ['principals', 'privileges']), store));
}

async function end(id: string | undefined, flags: EndFlags, command: Command): Promise<void> {
  const session = new Session(command);
  const store = SessionStore.fromEnv(session.env);
  const target = targetSession(store, id);
  const { view, removed } = await endAtBroker(session, store, target, flags.reason, flags.note);
  const ended = `ended session ${view.id} (${view.end_reason ?? flags.reason})${removed ? '; its local key was deleted' : ''}`;
  if (!flags.waitEnforced) {
    if (session.json) return printJson(view);
    return say(ended);
  }
  if (!session.json) say(ended);
  await printEnforcement(session, view.id, flags.timeout);
}

/**
 * Waits for the session's receipt to say the end is enforced, and prints it (with `--json`,
 * the receipt is the answer). Not enforced within `timeoutSeconds`: exit 1, naming the
 * enforcement points still pending.
 */
async function printEnforcement(session: Session, id: string, timeoutSeconds: number): Promise<void> {
  let told = '';
  const final = await waitForEnforcement(
    () => session.lookup<SessionReceipt>('GET', `/v1/sessions/${seg(id)}/receipt`),
    {
      timeoutMs: timeoutSeconds * 1000,
      now: io().now,
      sleep: io().sleep,
      onPending: (r) => {
        const line = `waiting for ${r.pending.length > 0 ? r.pending.join(', ') : 'the end to reach the log'}…`;
        if (!session.json && line !== told) warn(line);
        told = line;
      },
    },
  );
  if (session.json) printJson(final);
  else say(`\n${receiptDetails(final)}`);
  if (!final.enforced) {
    throw new CliError(
      'not_enforced',
      `the end of session ${id} was not enforced within ${formatDuration(timeoutSeconds)}` +
        (final.pending.length > 0 ? `; pending: ${final.pending.join(', ')}` : ''),
      EXIT.refused,
      `\`tether session receipt ${id}\` shows it again later`,
    );
  }
}

async function receipt(id: string | undefined, _f: unknown, command: Command): Promise<void> {
  const session = new Session(command);
  const store = SessionStore.fromEnv(session.env);
  const target = targetSession(store, id);
  const answer = await session.call<SessionReceipt>('GET', `/v1/sessions/${seg(target)}/receipt`);
  if (session.json) return printJson(answer);
  say(receiptDetails(answer));
}

/**
 * `POST /v1/sessions/:id/end`, then the local key is deleted: a session's key must not outlive
 * it. A session the broker says has already ended loses its local key too.
 */
export async function endAtBroker(
  session: Session,
  store: SessionStore,
  id: string,
  reason: 'completed' | 'revoked',
  note: string | undefined,
): Promise<{ view: SessionView; removed: boolean }> {
  let view: SessionView;
  try {
    view = await session.call<SessionView>('POST', `/v1/sessions/${seg(id)}/end`, {
      reason,
      ...(note === undefined ? {} : { note }),
    });
  } catch (err) {
    if (err instanceof BrokerError && err.code === 'session_not_live' && store.remove(id)) {
      noteRemoved(id, 'it had already ended');
    }
    throw err;
  }
  return { view, removed: store.remove(id) };
}
