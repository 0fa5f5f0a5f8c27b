import { createRequire } from 'node:module';
import { Command } from 'commander';
import { describeFailure, EXIT } from './errors.js';
import { type CliIo, io, runState, withIo } from './io.js';
import { sanitize, warn } from './output.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

type Register = (program: Command) => void;

/**
 * Each top-level verb and the module that declares it, in the order `--help` lists them.
 * A module is imported only when its verb runs (or for the full help), so that a verb loads
 * its own code and nothing of the others'.
 */
const VERBS: readonly [verb: string, load: () => Promise<Register>][] = [
  ['server', async () => (await import('./commands/server.js')).registerServer],
  ['init', async () => (await import('./commands/init.js')).registerInit],
  ['whoami', async () => (await import('./commands/whoami.js')).registerWhoami],
  ['login logout', async () => (await import('./commands/login.js')).registerLogin],
  ['principal', async () => (await import('./commands/principal.js')).registerPrincipal],
  ['group', async () => (await import('./commands/group.js')).registerGroup],
  ['privilege', async () => (await import('./commands/privilege.js')).registerPrivilege],
  ['policy', async () => (await import('./commands/policy.js')).registerPolicy],
  ['request', async () => (await import('./commands/request.js')).registerRequest],
  ['requests', async () => (await import('./commands/requests.js')).registerRequests],
  // approve, deny and cancel
  ['approve deny cancel', async () => (await import('./commands/review.js')).registerReviews],
  ['session', async () => (await import('./commands/session.js')).registerSession],
  ['revoke', async () => (await import('./commands/revoke.js')).registerRevoke],
  ['tenant', async () => (await import('./commands/tenant.js')).registerTenant],
  ['customer customers', async () => (await import('./commands/customer.js')).registerCustomer],
  ['relationship', async () => (await import('./commands/relationship.js')).registerRelationship],
  ['fetch', async () => (await import('./commands/fetch.js')).registerFetch],
  ['exec', async () => (await import('./commands/exec.js')).registerExec],
  ['keys', async () => (await import('./commands/keys.js')).registerKeys],
  ['trust', async () => (await import('./commands/trust.js')).registerTrust],
  ['signal', async () => (await import('./commands/signal.js')).registerSignal],
  ['ticket', async () => (await import('./commands/ticket.js')).registerTicket],
  ['webhook', async () => (await import('./commands/webhook.js')).registerWebhook],
  ['connector', async () => (await import('./commands/connector.js')).registerConnector],
  ['notify', async () => (await import('./commands/notify.js')).registerNotify],
  ['pep', async () => (await import('./commands/pep.js')).registerPep],
  ['audit', async () => (await import('./commands/audit.js')).registerAudit],
  ['recording', async () => (await import('./commands/recording.js')).registerRecording],
  ['ssf', async () => (await import('./commands/ssf.js')).registerSsf],
  ['gateway', async () => (await import('./commands/gateway.js')).registerGateway],
  ['demo', async () => (await import('./commands/demo.js')).registerDemo],
];

/** Global options that take a value (`--as olivia`), to find the verb after them. */
const VALUED_GLOBALS = new Set(['--as', '--identity']);

/**
 * The verb a command line names: its first word that is neither an option nor a global
 * option's value. Undefined when there is none (`tether`, `tether --help`).
 */
export function verbOf(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') return args[i + 1];
    if (VALUED_GLOBALS.has(arg)) i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

/** The verb's module alone when it is known; else every verb (help, errors, suggestions). */
async function verbsToRegister(verb: string | undefined): Promise<Register[]> {
  const known = VERBS.find(([names]) => verb !== undefined && names.split(' ').includes(verb));
  return Promise.all((known ? [known] : VERBS).map(([, load]) => load()));
}

/**
 * The `tether` command. Global options are declared once, here, and read by every verb
 * with `optsWithGlobals()`; they may come before or after the verb. With `verb`, only that
 * verb is declared (see {@link VERBS}); without it, all of them.
 */
export async function buildProgram(verb?: string): Promise<Command> {
  const program = new Command('tether')
    .description('Tether: session-bound privileges. Ask for access for one task, approve it, audit it.')
    .version(version)
    .option('--json', "print the API's JSON answer, and nothing else, on stdout")
    .option('--as <principal>', 'act as a demo principal: $TETHER_HOME/demo/<principal>.json')
    .option(
      '--identity <file>',
      'act with this identity file (else $TETHER_IDENTITY, else $TETHER_HOME/identity.json)',
    )
    // Must precede the verbs: commands created with .command() inherit them.
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io().stdout.write(text),
      writeErr: (text) => io().stderr.write(text),
      // As commander's own: the terminal's width, else its default (undefined).
      getOutHelpWidth: () => (io().stdout.isTTY ? io().stdout.columns : undefined) as number,
      getErrHelpWidth: () => (io().stderr.isTTY ? io().stderr.columns : undefined) as number,
    })
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 refused by the broker (or not approved), 2 usage error, 3 broker unreachable or identity unusable, 4 a package the verb needs is not installed.',
    );
  for (const register of await verbsToRegister(verb)) register(program);
  return program;
}

/**
 * Runs the CLI on `argv` (as in `process.argv`) and answers the exit code; errors go to
 * stderr. `given` replaces any part of the process's I/O (streams, fetch, clock, environment)
 * for this run only.
 *
 * @example
 * ```ts
 * const code = await run(['node', 'tether', '--json', 'requests'], { stdout, env: { TETHER_HOME: home } });
 * ```
 */
export function run(argv: string[], given: Partial<CliIo> = {}): Promise<number> {
  return withIo(given, async () => {
    try {
      const program = await buildProgram(verbOf(argv.slice(2)));
      await program.parseAsync(argv);
      return EXIT.ok;
    } catch (err) {
      const failure = describeFailure(err, runState());
      // One line each: a detail from the broker cannot add lines (a fake `hint:`) or escapes.
      for (const line of failure.lines) warn(sanitize(line));
      return failure.exitCode;
    }
  });
}

/** {@link run}, by the name the README uses for embedding. */
export const runCli = run;
