import { BoundSession, BrokerError, generateSessionKey, SessionRecorder } from '@tether-broker/client';
import type { RequestView } from '@tether-broker/protocol/api';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { seg } from '../api.js';
import { approvedRequestForTicket } from '../approved-requests.js';
import { parseDuration } from '../duration.js';
import { CliError, EXIT, isConnectionFailure } from '../errors.js';
import { warn } from '../output.js';
import { withCustomerSeat } from '../seat.js';
import { Session } from '../session.js';
import { SignalRelay, startChild, stopChild } from './exec-child.js';
import { announce, awaitCredentials, type CredentialsHow, type Handoff, handOver } from './exec-handoff.js';
import { type RecordedChild, startRecordedChild } from './exec-pty.js';
import { endQuietly, guard, type Stop, UNREACHABLE_LIMIT_MS } from './exec-watch.js';

interface ExecFlags {
  ticket?: string;
  request?: string;
  privilege?: string;
  justification?: string;
  /** Seconds. */
  duration?: number;
  credentials: CredentialsHow;
  /** Milliseconds. */
  poll: number;
}

export const POLL_DEFAULT_MS = 1_000;
export const POLL_MIN_MS = 100;

const EXIT_HELP = `
The session exists only for this command: its key is generated in memory and never written
to disk, and the session is ended (completed) when the command exits.

Credentials (--credentials env, the default): TETHER_SESSION_ID, and for each downstream
credential TETHER_<CONNECTOR>_USERNAME and TETHER_<CONNECTOR>_PASSWORD (the connector's name
upper-cased, other characters than A-Z and 0-9 as _), plus PGUSER and PGPASSWORD when there is
exactly one postgres credential. --credentials file: TETHER_SESSION_ID and
TETHER_CREDENTIALS_FILE, a JSON file (0600, in a 0700 directory) removed when the command exits.

Recorded sessions: when the privilege requires recording, the command runs on a
pseudo-terminal (node-pty) and what it writes (and, if the privilege says so, what is typed)
is streamed to the broker as it happens, in chunks signed by the session key. If the broker
cannot take the recording for half its lapse (15s by default), the command is stopped and the
session ended: it never runs on unrecorded. Auditors replay it: tether recording play <session>.

Exit codes:
  the command's own, or 128+N when signal N killed it (the session then ends, completed)
  1    the session ended while the command ran (revoked, expired, ticket closed…), or its
       recording could not be delivered: the command
       was stopped (SIGTERM, SIGKILL 3s later) and stderr says "tether: session <id> ended
       (<reason>)"; or, before anything ran, the request is pending approval, not approved, or
       refused by the broker
  2    usage error: nothing was asked for or started
  3    the broker cannot be reached (while the command ran: for 30s, and the command was stopped)
  126  the command is not executable;  127  the command was not found

Examples:
  tether exec --as deploy-pipeline --privilege deploy --ticket CHG-1 --duration 30m \\
    --justification 'release 1.4' -- ./deploy.sh
  tether exec --ticket NET-42 -- psql -h db.internal
`;

/** `tether exec … -- <command>`: runs one command inside a session of its own. */
export function registerExec(program: Command): void {
  withCustomerSeat(program.command('exec'))
    .description(
      'run a command with a session of its own: activate it, pass its credentials, stop the command if the session ends, end the session when the command exits',
    )
    .usage('[options] -- <command> [args...]')
    .argument('[command]', 'the command to run (after --), without a shell')
    .argument('[args...]', 'its arguments')
    .option('--request <id>', 'activate this approved request of yours')
    .option(
      '--ticket <ref>',
      'activate your one approved request for this ticket (with --privilege: its ticket)',
    )
    .option('--privilege <name>', 'ask for this privilege first; it must be approved at once (auto-approval)')
    .option('--justification <text>', 'with --privilege: why, what the task is')
    .option(
      '--duration <duration>',
      'with --privilege: how long, e.g. 30m (default: 1h or the maximum)',
      parseDuration,
    )
    .addOption(
      new Option('--credentials <how>', 'how the command gets the credentials')
        .choices(['env', 'file'])
        .default('env'),
    )
    .addOption(
      new Option(
        '--poll <duration>',
        'how often to check that the session is live, e.g. 200ms, 2s (minimum 100ms)',
      )
        .argParser(parsePoll)
        .default(POLL_DEFAULT_MS, '1s'),
    )
    .addHelpText('after', EXIT_HELP)
    .action((name: string | undefined, args: string[], flags: ExecFlags, command: Command) =>
      execute(name, args, flags, command),
    );
}

/**
 * `--poll`: `200ms`, or any duration {@link parseDuration} reads (`1s`, `2m`, plain seconds).
 * Shorter than 100 ms is refused: the broker would be asked more than it needs to be.
 */
export function parsePoll(text: string): number {
  const millis = /^(\d+)ms$/.exec(text.trim());
  const ms = millis ? Number(millis[1]) : parseDuration(text) * 1000;
  if (ms < POLL_MIN_MS) {
    throw new InvalidArgumentError(`${JSON.stringify(text)} is too short: the minimum is ${POLL_MIN_MS}ms`);
  }
  return ms;
}

/** Refuses a command line that cannot work, before anything is asked of the broker. */
export function checkInvocation(
  flags: Omit<ExecFlags, 'credentials' | 'poll'>,
  name: string | undefined,
): void {
  const usage = (detail: string) =>
    new CliError('invalid_argument', detail, EXIT.usage, 'see tether exec --help');
  if (name === undefined || name === '')
    throw usage('name the command to run after --: tether exec [options] -- <command> [args...]');
  if (flags.request !== undefined && flags.privilege !== undefined)
    throw usage('give --request or --privilege, not both');
  if (flags.request !== undefined && flags.ticket !== undefined)
    throw usage(
      "give --request or --ticket, not both (with --privilege, --ticket is the new request's ticket)",
    );
  if (flags.privilege !== undefined) {
    if (flags.justification === undefined)
      throw usage('--privilege asks for the privilege: say why with --justification <text>');
    return;
  }
  if (flags.justification !== undefined || flags.duration !== undefined)
    throw usage('--justification and --duration describe a new request: they go with --privilege');
  if (flags.request === undefined && flags.ticket === undefined)
    throw usage(
      'say which request to activate: --request <id> or --ticket <ref>, or ask with --privilege <name>',
    );
}

/** The request to activate: asked for now (`--privilege`), given by id, or found by ticket. */
async function requestFor(session: Session, flags: ExecFlags): Promise<RequestView> {
  if (flags.privilege !== undefined) {
    return session.lookup<RequestView>('POST', '/v1/requests', {
      privilege: flags.privilege,
      justification: flags.justification,
      ...(flags.ticket === undefined ? {} : { ticket: flags.ticket }),
      ...(flags.duration === undefined ? {} : { duration: flags.duration }),
    });
  }
  if (flags.request !== undefined) {
    return session.lookup<RequestView>('GET', `/v1/requests/${seg(flags.request)}`);
  }
  return approvedRequestForTicket(session, flags.ticket!, {
    notFoundSuffix: '; nothing was run',
    ambiguousHint: 'name one with --request <id>',
  });
}

/** Only an approved request can start the session; anything else says what it waits for. */
function assertApproved(request: RequestView): void {
  if (request.state === 'approved') return;
  if (request.state === 'pending') {
    throw new CliError(
      'request_pending',
      `request ${request.id} awaits approval; nothing was run`,
      EXIT.refused,
      `once an approver has run \`tether approve ${request.id}\`: tether exec --request ${request.id} -- …`,
    );
  }
  throw new CliError(
    `request_${request.state}`,
    `request ${request.id} is ${request.state}, not approved; nothing was run`,
    EXIT.refused,
    '`tether requests --mine` shows your requests and their states',
  );
}

/** Why the command stopped: it exited, the session ended, or its recording could not be kept. */
type Outcome = Stop | { kind: 'exited' } | { kind: 'recording_lost'; why: string };

/** Runs the command while the session is live; answers the exit code of `tether exec`. */
async function supervise(
  session: Session,
  bound: BoundSession,
  command: { name: string; args: string[]; env: Record<string, string> },
  pollMs: number,
  relay: SignalRelay,
): Promise<number> {
  const recorded = bound.info.recording === undefined ? undefined : await startRecorded(bound, command);
  const child = recorded?.child ?? startChild(command.name, command.args, command.env);
  relay.attach(child.process);
  let outcome: Outcome;
  let code: number;
  try {
    const watching = guard(session.client(), bound, pollMs);
    try {
      outcome = await Promise.race([
        child.exited.then(() => ({ kind: 'exited' }) as const),
        watching.stopped,
        ...(recorded ? [recorded.lost] : []),
      ]);
    } finally {
      watching.dispose();
      // Whatever happened, the command does not outlive its session's supervision.
      stopChild(child);
    }
    code = await child.exited;
  } finally {
    // This terminal back as it was (raw mode off), whatever happened.
    recorded?.child.dispose();
  }
  // The tail: what the command wrote until it stopped, as the final chunk.
  if (recorded && !(await recorded.recorder.close()) && outcome.kind !== 'recording_lost')
    outcome = { kind: 'recording_lost', why: recorded.why() };
  return conclude(bound, outcome, code);
}

/** The recorder and the command on a PTY, for a session that must run recorded. */
async function startRecorded(
  bound: BoundSession,
  command: { name: string; args: string[]; env: Record<string, string> },
) {
  let lostWhy = '';
  let onLost: (outcome: { kind: 'recording_lost'; why: string }) => void = () => undefined;
  const lost = new Promise<{ kind: 'recording_lost'; why: string }>((resolve) => {
    onLost = resolve;
  });
  let child: RecordedChild | undefined;
  const recorder = new SessionRecorder(bound, {
    onLost: (why) => {
      lostWhy = why;
      onLost({ kind: 'recording_lost', why });
    },
    onSent: () => child?.relieve(),
  });
  child = await startRecordedChild(command.name, command.args, command.env, recorder);
  return { recorder, child, lost, why: () => lostWhy };
}

/** After the command: the session ends (or has ended), and the exit code says which way. */
async function conclude(bound: BoundSession, outcome: Outcome, code: number): Promise<number> {
  const { id } = bound.info;
  if (outcome.kind === 'ended') {
    warn(`tether: session ${id} ended (${outcome.reason}); the command was stopped`);
    return EXIT.refused;
  }
  if (outcome.kind === 'recording_lost') {
    // A session that must run recorded does not run on unrecorded: ended here if the broker
    // answers, else by the broker itself once the recording lapses.
    const ended = await endQuietly(bound);
    warn(
      `tether: the recording of session ${id} could not be delivered: ${outcome.why}; the command was stopped` +
        (ended ? ' and the session ended' : ' (the broker ends the session when its recording lapses)'),
    );
    return EXIT.refused;
  }
  if (outcome.kind === 'unreachable') {
    const ended = await endQuietly(bound);
    warn(
      `tether: the broker could not be reached for ${UNREACHABLE_LIMIT_MS / 1000}s to check session ${id}; the command was stopped` +
        (ended ? '' : ` (end the session once the broker is back: tether session end ${id})`),
    );
    return EXIT.unreachable;
  }
  try {
    await bound.end('completed');
  } catch (err) {
    const why =
      err instanceof BrokerError ? err.code : isConnectionFailure(err) ? 'broker unreachable' : String(err);
    warn(
      `tether: warning: could not end session ${id} (${why}); it stays live until its expiry unless ended: tether session end ${id}`,
    );
  }
  return code;
}

async function execute(
  name: string | undefined,
  args: string[],
  flags: ExecFlags,
  command: Command,
): Promise<void> {
  checkInvocation(flags, name);
  const session = new Session(command);
  const request = await requestFor(session, flags);
  assertApproved(request);
  // Non-extractable and held in memory only: the session dies with this process.
  const key = await generateSessionKey();
  const relay = new SignalRelay();
  let bound: BoundSession | undefined;
  let handoff: Handoff | undefined;
  let code: number;
  try {
    bound = await session.use((client) => BoundSession.activate(client, request.id, key));
    await awaitCredentials(bound, relay);
    handoff = handOver(bound, flags.credentials);
    announce(bound, request, name!, flags.credentials);
    code = await supervise(session, bound, { name: name!, args, env: handoff.env }, flags.poll, relay);
  } catch (err) {
    if (bound) await endQuietly(bound);
    throw err;
  } finally {
    relay.dispose();
    handoff?.cleanup();
  }
  // The command's own exit code is the answer, and `run` can only answer the CLI's own codes
  // (or print an error line with them): so the process exits here, everything cleaned up.
  process.exit(code);
}
