import { createRequire } from 'node:module';
import { Command } from 'commander';
import { registerAudit } from './commands/audit.js';
import { registerDemo } from './commands/demo.js';
import { registerFetch } from './commands/fetch.js';
import { registerGateway } from './commands/gateway.js';
import { registerGroup } from './commands/group.js';
import { registerInit } from './commands/init.js';
import { registerKeys } from './commands/keys.js';
import { registerPep } from './commands/pep.js';
import { registerPolicy } from './commands/policy.js';
import { registerPrincipal } from './commands/principal.js';
import { registerPrivilege } from './commands/privilege.js';
import { registerRequest } from './commands/request.js';
import { registerRequests } from './commands/requests.js';
import { registerReviews } from './commands/review.js';
import { registerRevoke } from './commands/revoke.js';
import { registerServer } from './commands/server.js';
import { registerSession } from './commands/session.js';
import { registerSignal } from './commands/signal.js';
import { registerSsf } from './commands/ssf.js';
import { registerTicket } from './commands/ticket.js';
import { registerTrust } from './commands/trust.js';
import { registerWebhook } from './commands/webhook.js';
import { registerWhoami } from './commands/whoami.js';
import { describeFailure, EXIT } from './errors.js';
import { sanitize, warn } from './output.js';
import { failureContext } from './session.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

/**
 * The `tether` command. Global options are declared once, here, and read by every verb
 * with `optsWithGlobals()`; they may come before or after the verb.
 */
export function buildProgram(): Command {
  const program = new Command('tether')
    .description('Tether: session-bound privileges. Ask for access for one task, approve it, audit it.')
    .version(version)
    .option('--json', "print the API's JSON answer, and nothing else, on stdout")
    .option('--as <principal>', 'act as a demo principal: $TETHER_HOME/demo/<principal>.json')
    .option(
      '--identity <file>',
      'act with this identity file (else $TETHER_IDENTITY, else $TETHER_HOME/identity.json)',
    )
    // Must precede the verbs: commands created with .command() inherit it.
    .exitOverride()
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 refused by the broker (or not approved), 2 usage error, 3 broker unreachable or identity unusable.',
    );
  registerServer(program);
  registerInit(program);
  registerWhoami(program);
  registerPrincipal(program);
  registerGroup(program);
  registerPrivilege(program);
  registerPolicy(program);
  registerRequest(program);
  registerRequests(program);
  registerReviews(program);
  registerSession(program);
  registerRevoke(program);
  registerFetch(program);
  registerKeys(program);
  registerTrust(program);
  registerSignal(program);
  registerTicket(program);
  registerWebhook(program);
  registerPep(program);
  registerAudit(program);
  registerSsf(program);
  registerGateway(program);
  registerDemo(program);
  return program;
}

/** Runs the CLI on `argv` (as in `process.argv`) and answers the exit code; errors go to stderr. */
export async function run(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    const failure = describeFailure(err, failureContext);
    // One line each: a detail from the broker cannot add lines (a fake `hint:`) or escapes.
    for (const line of failure.lines) warn(sanitize(line));
    return failure.exitCode;
  }
}
