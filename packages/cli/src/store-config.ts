import type { BrokerConfig, ConfigInput } from '@tether-broker/broker';
import { type Command, InvalidArgumentError } from 'commander';
import { CliError, EXIT } from './errors.js';
import { loadBroker } from './optional.js';

/** The flags `server` and `init` share: where the store is and how the broker is reached. */
export interface StoreFlags {
  port?: number | undefined;
  host?: string | undefined;
  data?: string | undefined;
  database?: string | undefined;
  publicUrl?: string | undefined;
  logLevel?: string | undefined;
  /** `tether server` only: HTTPS and the plain-http guard. */
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  tlsClientCa?: string | undefined;
  allowInsecureHttp?: boolean | undefined;
}

function parsePort(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 65535) {
    throw new InvalidArgumentError(`${JSON.stringify(text)} is not a port number (0-65535)`);
  }
  return Number(text);
}

/** Adds the store and address flags to a command. */
export function withStoreFlags(command: Command): Command {
  return command
    .option('--port <port>', 'listen port (env TETHER_PORT; default 8700)', parsePort)
    .option('--host <host>', 'listen address (env TETHER_HOST; default 127.0.0.1)')
    .option('--data <dir>', 'directory of the embedded SQLite store (env TETHER_DATA; default ./.tether)')
    .option('--database <url>', 'PostgreSQL URL instead of SQLite (env DATABASE_URL)')
    .option('--public-url <url>', "the broker's public base URL (env TETHER_PUBLIC_URL)");
}

/**
 * The broker configuration from the environment and the flags; flags win. Validated whole,
 * as the broker does at start: an invalid setting is a usage error naming it.
 */
export async function configFrom(
  flags: StoreFlags,
  env: NodeJS.ProcessEnv,
  verb: string,
): Promise<{ input: ConfigInput; config: BrokerConfig }> {
  const { configFromEnvironment, resolveConfig } = await loadBroker(verb);
  const fromFlags: Record<string, unknown> = {
    port: flags.port,
    host: flags.host,
    dataDir: flags.data,
    database: flags.database,
    publicUrl: flags.publicUrl,
    logLevel: flags.logLevel,
    tlsCert: flags.tlsCert,
    tlsKey: flags.tlsKey,
    tlsClientCa: flags.tlsClientCa,
    allowInsecureHttp: flags.allowInsecureHttp,
  };
  const input: Record<string, unknown> = { ...configFromEnvironment(env) };
  for (const [key, value] of Object.entries(fromFlags)) if (value !== undefined) input[key] = value;
  try {
    return { input: input as ConfigInput, config: resolveConfig(input) };
  } catch (err) {
    throw new CliError('invalid_config', (err as Error).message, EXIT.usage);
  }
}

/** The store's location for display: a PostgreSQL URL without its password. */
export function describeStore(config: Pick<BrokerConfig, 'database' | 'dataDir'>, location: string): string {
  if (!config.database) return `sqlite ${location}`;
  try {
    const url = new URL(config.database);
    if (url.password) url.password = '***';
    return `postgresql ${url.toString()}`;
  } catch {
    return 'postgresql';
  }
}
