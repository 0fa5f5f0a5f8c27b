import { existsSync } from 'node:fs';
import { basename, isAbsolute, join, relative } from 'node:path';
import type { BrokerConfig, BrokerContext, RunningBroker } from '@tether-broker/broker';
import { type Command, Option } from 'commander';
import { knownDemoKeys, type WrittenDemo, writeDemoIdentities } from '../demo-identities.js';
import { CliError, EXIT } from '../errors.js';
import { io } from '../io.js';
import { loadBroker } from '../optional.js';
import { say } from '../output.js';
import { stopOnSignals } from '../signals.js';
import { configFrom, describeStore, type StoreFlags, withStoreFlags } from '../store-config.js';

interface ServerFlags extends StoreFlags {
  demo?: boolean;
}

interface DemoBanner {
  written: WrittenDemo;
  tenant: string;
  cast: { name: string; role: string }[];
  msp: {
    provider: string;
    customers: string[];
    relationship: string | undefined;
    cast: { name: string; role: string }[];
  };
}

/** `tether server`: runs the broker in this process until SIGINT / SIGTERM. */
export function registerServer(program: Command): void {
  withStoreFlags(program.command('server'))
    .description('run the broker (and, with --demo, seed a demo tenant and write its identities)')
    .addOption(
      new Option(
        '--log-level <level>',
        'log level; logs go to stderr as JSON (env TETHER_LOG_LEVEL)',
      ).choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    )
    .option('--demo', 'seed the demo tenant; logs default to warn so the banner stays readable')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain) (env TETHER_TLS_CERT)')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert (env TETHER_TLS_KEY)')
    .option(
      '--tls-client-ca <file>',
      'require a client certificate issued by this PEM CA from every client (env TETHER_TLS_CLIENT_CA)',
    )
    .option(
      '--allow-insecure-http',
      'start even though the public URL is plain http to a host that is not loopback (env TETHER_ALLOW_INSECURE_HTTP=1)',
    )
    .action((flags: ServerFlags) => serve(flags, io().env));
}

/** Logs at `warn` in demo mode unless a level was asked for: the terminal is for the banner. */
function effectiveFlags(flags: ServerFlags, env: NodeJS.ProcessEnv): ServerFlags {
  const levelChosen = flags.logLevel !== undefined || (env.TETHER_LOG_LEVEL ?? '') !== '';
  return flags.demo && !levelChosen ? { ...flags, logLevel: 'warn' } : flags;
}

async function serve(flags: ServerFlags, env: NodeJS.ProcessEnv): Promise<void> {
  const { input, config } = await configFrom(effectiveFlags(flags, env), env, 'server');
  // Loaded here, not at start-up: the other verbs do not pay for the broker's dependencies.
  const broker = await loadBroker('server');
  // Refused before the store is opened or created: nothing is left behind by a start that cannot serve.
  refuseAs('insecure_http', () => broker.assertSecureTransport(config));
  refuseAs('invalid_config', () => broker.tlsServerOptions(config));
  const logger = broker.createLogger(config.logLevel, io().stderr);
  const ctx = await broker.openBroker({ config: input, logger });
  let demo: DemoBanner | undefined;
  try {
    if (flags.demo) {
      // Seeded before listening: once /healthz answers, the identity files are in place.
      // With TETHER_DEMO_DATABASE_URL, the demo adds a PostgreSQL connector on that database.
      const seed = await broker.seedDemo(ctx, knownDemoKeys(env), {
        databaseUrl: env.TETHER_DEMO_DATABASE_URL,
      });
      const written = writeDemoIdentities(seed, config.publicUrl, env);
      const { msp } = seed;
      demo = {
        written,
        tenant: `${seed.tenant.name} (${seed.tenant.id})`,
        cast: seed.identities,
        msp: {
          provider: msp.provider.name,
          customers: msp.customers.map((c) => c.name),
          relationship:
            msp.relationship &&
            `${msp.relationship.name} with ${msp.relationship.customer} (${msp.relationship.state})`,
          cast: msp.identities,
        },
      };
    }
  } catch (err) {
    await ctx.store.close();
    throw err;
  }
  const running = await listen(() => broker.startBroker(ctx), ctx, config);
  say(banner(config, broker.storeLocation(config), demo));
  stopOnSignals('broker', () => running.stop());
}

/** Runs a start-up check; its refusal becomes a usage error with `code`. */
function refuseAs(code: string, check: () => unknown): void {
  try {
    check();
  } catch (err) {
    throw new CliError(code, (err as Error).message, EXIT.usage);
  }
}

async function listen(
  start: () => Promise<RunningBroker>,
  ctx: BrokerContext,
  config: BrokerConfig,
): Promise<RunningBroker> {
  try {
    return await start();
  } catch (err) {
    await ctx.store.close().catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      throw new CliError(
        code === 'EADDRINUSE' ? 'address_in_use' : 'address_not_permitted',
        `cannot listen on ${config.host}:${config.port} (${code})`,
        EXIT.refused,
        code === 'EADDRINUSE'
          ? 'is another broker running there? choose another port with --port'
          : 'choose a port above 1023 with --port',
      );
    }
    throw err;
  }
}

function banner(config: BrokerConfig, location: string, demo: DemoBanner | undefined): string {
  const lines = [
    `tether broker listening on ${config.publicUrl}`,
    `store: ${describeStore(config, location)}`,
  ];
  if (demo) {
    const width = Math.max(...[...demo.cast, ...demo.msp.cast].map((c) => c.name.length));
    lines.push(
      `demo tenant: ${demo.tenant}`,
      `demo identities (in ${demo.written.dir}; act as one with --as <name>):`,
      ...demo.cast.map((c) => `  ${c.name.padEnd(width)}  ${c.role}`),
    );
    if (demo.written.defaultIdentity)
      lines.push(`admin is also the default identity: ${demo.written.defaultIdentity}`);
    const tether = invocation();
    lines.push(
      'next, in another terminal (the whole tour: docs/walkthrough.md):',
      `  ${tether} request firewall-admin --ticket NET-1234 --duration 30m --reason "rotate edge rules" --as olivia`,
      `  ${tether} approve --ticket NET-1234 --as avery`,
      `  ${tether} audit verify --as admin`,
      `MSP demo: provider ${demo.msp.provider}, customers ${demo.msp.customers.join(', ')}; relationship ${demo.msp.relationship ?? 'none'}:`,
      ...demo.msp.cast.map((c) => `  ${c.name.padEnd(width)}  ${c.role}`),
      `  ${tether} --as morgan customers`,
      `  ${tether} --as morgan request server-maintenance --customer acme-corp --reason "patch app servers"`,
      `  ${tether} --as acme-approver requests --state pending`,
    );
  }
  lines.push('stop with Ctrl+C');
  return lines.join('\n');
}

/** How to call this CLI in the commands the banner suggests: `npx tether` in the checkout, else `tether` or `node <path>`. */
function invocation(): string {
  const script = process.argv[1] ?? '';
  if (basename(script) !== 'main.js') return 'tether';
  // In the checkout, as after `npm install && npm start`: the workspace links the command.
  if (existsSync(join(process.cwd(), 'node_modules', '.bin', 'tether'))) return 'npx tether';
  const path = relative(process.cwd(), script);
  return `node ${path.startsWith('..') || isAbsolute(path) ? script : path}`;
}
