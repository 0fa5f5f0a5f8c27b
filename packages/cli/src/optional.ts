/**
 * The packages only some verbs need, loaded when one of them runs. A requester installs the
 * CLI alone; the broker (with its native SQLite build) and the gateway's HTTP stack are
 * optional peer dependencies that a server operator installs beside it (see README.md).
 */
import { CliError, EXIT } from './errors.js';

/** What `server`, `init` and `keys` need: the broker, run in this process. */
export const SERVER_PACKAGES = ['@tether-broker/broker'] as const;
/** What `gateway` needs: the PEP library, the reverse proxy and its logging and metrics. */
export const GATEWAY_PACKAGES = [
  '@tether-broker/pep',
  'fastify',
  '@fastify/reply-from',
  'pino',
  'prom-client',
  'yaml',
] as const;
/** What `demo firewall` needs. */
export const DEMO_PACKAGES = ['fastify'] as const;

/**
 * The verb cannot run on this install: `package` is not there. Code `package_missing`, exit 4,
 * with the command that installs what the verb needs.
 */
export function packageMissing(verb: string, missing: string, needed: readonly string[]): CliError {
  return new CliError(
    'package_missing',
    `\`tether ${verb}\` needs ${missing}, which is not installed`,
    EXIT.missingPackage,
    `install it beside the CLI: npm install ${needed.join(' ')}`,
  );
}

/** The one of `packages` that an import failed to find, if that is why it failed. */
function notFound(err: unknown, packages: readonly string[]): string | undefined {
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (code !== 'ERR_MODULE_NOT_FOUND' || typeof message !== 'string') return undefined;
  return packages.find((name) => message.includes(`'${name}'`));
}

/**
 * Runs `load` (a dynamic `import()`); a failure to find one of `packages` becomes
 * {@link packageMissing}. Any other failure is left as it is.
 *
 * @example
 * ```ts
 * const broker = await loadOptional('server', SERVER_PACKAGES, () => import('@tether-broker/broker'));
 * ```
 */
export async function loadOptional<T>(
  verb: string,
  packages: readonly string[],
  load: () => Promise<T>,
): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const missing = notFound(err, packages);
    if (missing !== undefined) throw packageMissing(verb, missing, packages);
    throw err;
  }
}

/** The broker package, for a verb that runs it in this process. */
export function loadBroker(verb: string): Promise<typeof import('@tether-broker/broker')> {
  return loadOptional(verb, SERVER_PACKAGES, () => import('@tether-broker/broker'));
}
