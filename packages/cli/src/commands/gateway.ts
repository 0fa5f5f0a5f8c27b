import { type Command, Option } from 'commander';
import type { GatewayFlags } from '../gateway/run.js';
import type { GlobalOptions } from '../identity.js';
import { GATEWAY_PACKAGES, loadOptional } from '../optional.js';

/** `tether gateway --config <file>`: a PEP in front of any HTTP service, until SIGINT / SIGTERM. */
export function registerGateway(program: Command): void {
  program
    .command('gateway')
    .description('run the HTTP gateway: a reverse proxy that enforces Tether sessions in front of a service')
    .requiredOption('--config <file>', 'the gateway configuration (YAML; see examples/gateway.yaml)')
    .addOption(
      new Option('--log-level <level>', 'log level; logs go to stderr as JSON').choices([
        'fatal',
        'error',
        'warn',
        'info',
        'debug',
        'trace',
        'silent',
      ]),
    )
    .addHelpText(
      'after',
      "\nThe gateway acts as its own principal (role pep): the config's `identity`, or --identity <file> / --as <name>.",
    )
    .action(async (flags: GatewayFlags, command: Command) => {
      // The proxy, its logging and metrics are loaded only now: other verbs never pay for them.
      const { runGateway } = await loadOptional(
        'gateway',
        GATEWAY_PACKAGES,
        () => import('../gateway/run.js'),
      );
      await runGateway(flags, command.optsWithGlobals<GlobalOptions>());
    });
}
