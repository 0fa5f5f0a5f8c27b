import { loadIdentity } from '@tether-broker/client';
import { destination, type Logger, pino } from 'pino';
import { CliError, EXIT } from '../errors.js';
import { type GlobalOptions, resolveIdentityPath } from '../identity.js';
import { io } from '../io.js';
import { say } from '../output.js';
import { stopOnSignals } from '../signals.js';
import {
  GatewayConfigError,
  insecureGatewayUrls,
  readGatewayConfig,
  resolveGatewayConfig,
} from './config.js';
import { createGateway } from './server.js';

/** `tether gateway`'s options. */
export interface GatewayFlags {
  config: string;
  logLevel?: string;
}

/** Never logged, whatever the level: credentials a client sent, keys. */
const LOG_REDACT = ['req.headers.authorization', 'req.headers.dpop', 'req.headers.cookie', '*.key', '*.d'];

/**
 * Lines are written in blocks of at least this many bytes, and at least every LOG_FLUSH_MS: one
 * write per few dozen requests instead of one per line, off the request's path (each write of
 * an asynchronous destination also takes a libuv thread the PEP's signature checks need).
 */
const LOG_BLOCK_BYTES = 4096;
const LOG_FLUSH_MS = 250;

/**
 * The gateway's log as `tether gateway` ships it: pino JSON lines on `fd` (stderr by default),
 * buffered (see LOG_BLOCK_BYTES); pino flushes what is left when the process exits.
 */
export function gatewayLogger(level: string, fd = 2): Logger {
  return pino(
    {
      level,
      base: { component: 'gateway' },
      redact: { paths: LOG_REDACT, censor: '[redacted]' },
    },
    destination({ dest: fd, minLength: LOG_BLOCK_BYTES, periodicFlush: LOG_FLUSH_MS, sync: false }),
  );
}

/** Runs the gateway until SIGINT / SIGTERM (`tether gateway`; loaded by that verb only). */
export async function runGateway(flags: GatewayFlags, globals: GlobalOptions): Promise<void> {
  const settings = readGatewayConfig(flags.config);
  // The gateway's identity is never the caller's default one: it must be named.
  const identityPath =
    globals.identity !== undefined || globals.as !== undefined
      ? resolveIdentityPath(globals, io().env).path
      : settings.identityFile;
  if (identityPath === undefined)
    throw new GatewayConfigError(flags.config, [
      'identity: is required (the identity file of the principal, role pep, the gateway acts as), or pass --identity / --as',
    ]);
  const config = resolveGatewayConfig(settings, loadIdentity(identityPath));
  // Before anything connects: the broker URL may come from the identity file, not the config.
  const insecure = insecureGatewayUrls(config);
  if (insecure.length > 0) throw new GatewayConfigError(flags.config, insecure);
  const logger = gatewayLogger(flags.logLevel ?? 'info');
  const gateway = await createGateway(config, { logger });
  let address: string;
  try {
    address = await gateway.listen();
  } catch (err) {
    await gateway.close().catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES')
      throw new CliError(
        code === 'EADDRINUSE' ? 'address_in_use' : 'address_not_permitted',
        `cannot listen on ${config.listen.host}:${config.listen.port} (${code})`,
        EXIT.refused,
        'change listen.port in the configuration',
      );
    throw err;
  }
  say(
    [
      `tether gateway listening on ${address} (public URL ${config.publicUrl})`,
      `upstream: ${config.upstream}`,
      `enforcing for tenant ${config.identity.tenant} as ${config.identity.principal}, audience ${config.audience}`,
      `revocation log: ${config.broker}, staleness budget ${config.stalenessBudgetMs} ms`,
      `routes: ${config.routes.length}; own endpoints: /healthz, /metrics`,
      'stop with Ctrl+C',
    ].join('\n'),
  );
  stopOnSignals('gateway', () => gateway.close());
}
