import { type Command, InvalidArgumentError } from 'commander';
import { CliError, EXIT } from '../errors.js';
import { io } from '../io.js';
import { DEMO_PACKAGES, loadOptional } from '../optional.js';

interface FirewallFlags {
  host: string;
  port: number;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return port;
}

/** `tether demo firewall`: the stand-in firewall admin API the demo gateway protects. */
export function registerDemo(program: Command): void {
  const demo = program.command('demo').description('demo services to try Tether with');
  demo
    .command('firewall')
    .description('run a stand-in firewall admin API (in-memory rules per edge; knows nothing of Tether)')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--port <port>', 'listen port', parsePort, 9801)
    .action((flags: FirewallFlags) => runFirewall(flags));
}

async function runFirewall(flags: FirewallFlags): Promise<void> {
  const { createFirewallApi } = await loadOptional(
    'demo firewall',
    DEMO_PACKAGES,
    () => import('../demo/firewall-api.js'),
  );
  const app = createFirewallApi();
  let address: string;
  try {
    address = await app.listen({ host: flags.host, port: flags.port });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES')
      throw new CliError(
        code === 'EADDRINUSE' ? 'address_in_use' : 'address_not_permitted',
        `cannot listen on ${flags.host}:${flags.port} (${code})`,
        EXIT.refused,
      );
    throw err;
  }
  io().stdout.write(
    `demo firewall admin API listening on ${address}\n` +
      'routes: GET|POST|DELETE /rules/:edge, DELETE /rules/:edge/:id (no authentication: put tether gateway in front)\n' +
      'stop with Ctrl+C\n',
  );
  const stop = () => {
    app.close().then(
      () => process.exit(EXIT.ok),
      () => process.exit(EXIT.refused),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
