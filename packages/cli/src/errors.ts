import { BrokerError, IdentityError } from '@tether-broker/client';
import { isTetherError } from '@tether-broker/protocol';
import { CommanderError } from 'commander';

/** Exit codes, the same for every verb. */
export const EXIT = {
  ok: 0,
  /** The broker refused (a problem answer), or the awaited outcome was not the hoped-for one. */
  refused: 1,
  /** The command line is wrong (commander's own errors included). */
  usage: 2,
  /** The broker cannot be reached, or the identity file cannot be used. */
  unreachable: 3,
  /** The verb needs a package that is not installed (server and gateway verbs on a requester's install). */
  missingPackage: 4,
} as const;

/**
 * An error the CLI itself raises, with a stable code, a one-line detail, the exit code and
 * an optional hint saying what to do next.
 */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: string,
    readonly detail: string,
    readonly exitCode: number,
    readonly hint?: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

/** Where a failure happened, for hints. */
export interface FailureContext {
  identityPath?: string | undefined;
  brokerUrl?: string | undefined;
}

/** What to print (on stderr) and the exit code, for any error a command can end with. */
export interface Failure {
  lines: string[];
  exitCode: number;
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);

/** A `fetch` failure that means the broker is not there (as opposed to a bug). */
export function isConnectionFailure(err: unknown): boolean {
  if (!(err instanceof TypeError)) return false;
  const cause = (err as { cause?: { code?: unknown; errors?: { code?: unknown }[] } }).cause;
  if (typeof cause?.code === 'string' && CONNECTION_CODES.has(cause.code)) return true;
  // Happy-eyeballs: an AggregateError of one failure per address.
  return (cause?.errors ?? []).some((e) => typeof e.code === 'string' && CONNECTION_CODES.has(e.code));
}

/** The broker is not reachable at the identity's URL. */
export function unreachable(url: string): CliError {
  return new CliError(
    'broker_unreachable',
    `cannot reach the broker at ${url}`,
    EXIT.unreachable,
    `is the broker running at ${url}? start it with \`tether server\``,
  );
}

/** An update with no change flags. */
export function nothingToChange(): CliError {
  return new CliError(
    'invalid_argument',
    'nothing to change: give at least one option',
    EXIT.usage,
    'see --help',
  );
}

/** One line saying what to do next, for the broker's refusal codes where there is something to say. */
export function hintFor(code: string, context: FailureContext = {}): string | undefined {
  const identity = context.identityPath ?? 'the identity file';
  switch (code) {
    case 'invalid_client':
    case 'unauthenticated':
    case 'invalid_token':
      return `check ${identity}: is it for the broker at ${context.brokerUrl ?? 'that URL'}, and is its key still registered?`;
    case 'principal_disabled':
      return 'an admin can enable it again: tether principal enable <name>';
    case 'forbidden':
      return 'this needs a role you do not have; `tether whoami` shows yours';
    case 'not_eligible':
      return 'no policy lets you do this; the policies in force: `tether policy show` (ask an admin)';
    case 'contract_not_active':
      return 'an admin can change the contract window: tether principal update <name> --contract-ends <time>';
    case 'approver_not_eligible':
      return "only the privilege's approvers may review it; `tether privilege show <name>` lists them";
    case 'self_approval_forbidden':
      return 'someone else, an eligible approver, must review it';
    case 'ticket_required':
    case 'ticket_pattern_mismatch':
      return 'pass --ticket <ref>; `tether privilege show <name>` shows the ticket rule';
    case 'duration_exceeds_max':
      return 'ask for less (--duration, or --by for an extension); `tether privilege show <name>` shows the maximum';
    case 'extension_pending':
      return 'wait for it to be reviewed, or cancel it: `tether requests --mine` shows it';
    case 'request_not_pending':
    case 'request_expired':
      return '`tether requests` shows its current state';
    case 'request_not_approved':
      return 'only an approved request can start a session; `tether requests --mine` shows its state';
    case 'activation_window_closed':
      return 'ask again: `tether request <privilege>`';
    case 'already_activated':
      return 'each approved request starts one session; `tether session list` shows it';
    case 'not_requester':
      return 'only the requester may start the session: act as them (--as / --identity)';
    case 'session_not_live':
      return '`tether session list --state ended` shows how it ended';
    case 'not_found':
      return 'names and ids are looked up in your own tenant only';
    case 'not_a_provider':
      return 'only a provider tenant has customers and relationships: `tether init --provider` makes one; `tether whoami` shows your tenant';
    case 'invalid_relationship':
      return 'check the window (--starts before --ends, --ends in the future), the provider group names and the customer privilege names';
    case 'relationship_not_active':
      return '`tether relationship show <id>` shows its state and window; a proposal waits for the customer admin: tether relationship accept <id>';
    case 'not_covered_by_relationship':
      return '`tether customers` lists the customers your groups may ask in, and for what';
    case 'relationship_tampered':
      return 'its stored record was changed outside the broker, so it grants nothing: end it and propose it again, and check who can write to the store';
    case 'seat_restricted':
      return "a provider operator's seat has no roles or keys of its own: its standing comes from the relationship";
    default:
      return undefined;
  }
}

/** Per-item messages a problem answer may carry (validation errors, policy errors). */
function problemErrors(body: unknown): string[] {
  const errors = (body as { errors?: unknown } | undefined)?.errors;
  if (!Array.isArray(errors)) return [];
  return errors.map((e) =>
    typeof e === 'string'
      ? e
      : `${(e as { path?: string }).path ?? ''} ${(e as { message?: string }).message ?? ''}`.trim(),
  );
}

function brokerFailure(err: BrokerError, context: FailureContext): Failure {
  const extra = problemErrors(err.body);
  // policy_invalid repeats its errors in the detail; print them once, one per line.
  const detail = extra.length > 0 && err.code === 'policy_invalid' ? 'the policy set is invalid' : err.detail;
  const lines = [`error ${err.code}: ${detail}`];
  if (err.code === 'policy_invalid' || (err.code === 'invalid_request' && extra.length > 1)) {
    lines.push(...extra.map((e) => `  ${e}`));
  }
  const policies = (err.body as { policies?: unknown } | undefined)?.policies;
  if (err.code === 'not_eligible' && Array.isArray(policies) && policies.length > 0) {
    lines.push(`  policies that decided: ${policies.join(', ')}`);
  }
  const disabled = err.code === 'invalid_client' && /disabled/.test(err.detail);
  const hint = hintFor(disabled ? 'principal_disabled' : err.code, context);
  if (hint) lines.push(`hint: ${hint}`);
  return { lines, exitCode: EXIT.refused };
}

/**
 * Turns any error a command ends with into the lines to print and the exit code: refusals
 * exit 1, usage errors 2, an unreachable broker or unusable identity 3. Never prints a key.
 */
export function describeFailure(err: unknown, context: FailureContext = {}): Failure {
  if (err instanceof CommanderError) {
    // Commander has already printed its message (or the help).
    return { lines: [], exitCode: err.exitCode === 0 ? EXIT.ok : EXIT.usage };
  }
  if (err instanceof CliError) {
    return {
      lines: [`error ${err.code}: ${err.detail}`, ...(err.hint ? [`hint: ${err.hint}`] : [])],
      exitCode: err.exitCode,
    };
  }
  if (err instanceof BrokerError) return brokerFailure(err, context);
  if (isTetherError(err)) {
    // Raised in this process by the broker's own code (`server`, `init`).
    const hint = hintFor(err.code, context);
    return {
      lines: [`error ${err.code}: ${err.detail}`, ...(hint ? [`hint: ${hint}`] : [])],
      exitCode: EXIT.refused,
    };
  }
  if (err instanceof IdentityError) {
    // A file that exists but is unusable says what to do in its message; a missing one gets a hint.
    const missing = /ENOENT/.test(err.message);
    const hint =
      'choose an identity with --as <principal>, --identity <file> or TETHER_IDENTITY; `tether init` or `tether server --demo` write one';
    return {
      lines: [`error identity_unusable: ${err.message}`, ...(missing ? [`hint: ${hint}`] : [])],
      exitCode: EXIT.unreachable,
    };
  }
  if (isConnectionFailure(err)) {
    const failure = unreachable(context.brokerUrl ?? 'its URL');
    return describeFailure(failure, context);
  }
  const message = err instanceof Error ? err.message : String(err);
  return { lines: [`error internal: ${message}`], exitCode: EXIT.refused };
}
