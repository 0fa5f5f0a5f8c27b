/**
 * Handing the session's downstream credentials to `tether exec`'s command: collected if still
 * minting, then given as environment variables or in a 0600 file, and announced on stderr.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BoundSession } from '@tether-broker/client';
import type { CredentialView, RequestView } from '@tether-broker/protocol/api';
import { CliError, EXIT, isConnectionFailure } from '../errors.js';
import { io } from '../io.js';
import { warn } from '../output.js';
import { assertNotInterrupted, type SignalRelay } from './exec-child.js';

/** `--credentials`: how the command gets the session's credentials. */
export type CredentialsHow = 'env' | 'file';

/** Connectors still minting at activation: collected every so often, for so long. */
const CREDENTIALS_EVERY_MS = 500;
const CREDENTIALS_WAIT_MS = 10_000;

/** A connector's name as it appears in variable names: `prod-db` → `PROD_DB`. */
export function connectorVariable(connector: string): string {
  return connector.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/**
 * The environment that hands `credentials` to the command (see the help text). Two
 * connectors whose names map to the same variables are refused rather than one silently
 * hiding the other.
 */
export function credentialEnv(
  sessionId: string,
  credentials: readonly CredentialView[],
): Record<string, string> {
  const env: Record<string, string> = { TETHER_SESSION_ID: sessionId };
  for (const c of credentials) {
    const prefix = `TETHER_${connectorVariable(c.connector)}`;
    if (`${prefix}_USERNAME` in env) {
      throw new CliError(
        'credential_name_clash',
        `two credentials would both be ${prefix}_USERNAME/_PASSWORD (connector ${c.connector}); the session was ended and nothing was run`,
        EXIT.refused,
        'use --credentials file: the file lists every credential',
      );
    }
    env[`${prefix}_USERNAME`] = c.username;
    env[`${prefix}_PASSWORD`] = c.secret;
  }
  const postgres = credentials.filter((c) => c.kind === 'postgres');
  if (postgres.length === 1) {
    env['PGUSER'] = postgres[0]!.username;
    env['PGPASSWORD'] = postgres[0]!.secret;
  }
  return env;
}

/**
 * Connectors still minting at activation: collected every 500 ms for up to 10 s. The command
 * must not start without credentials it was granted; a broker that does not answer in that
 * time is as good as one that never mints them.
 */
export async function awaitCredentials(bound: BoundSession, relay: SignalRelay): Promise<void> {
  const deadline = io().now() + CREDENTIALS_WAIT_MS;
  while (bound.info.credentialsPending.length > 0) {
    assertNotInterrupted(relay, bound.info.id);
    if (io().now() >= deadline) {
      throw new CliError(
        'credentials_pending',
        `credentials for ${bound.info.credentialsPending.join(', ')} were still being minted after ${CREDENTIALS_WAIT_MS / 1000}s; session ${bound.info.id} was ended and nothing was run`,
        EXIT.refused,
        'try again; if it persists, an admin can check the connector: `tether audit`',
      );
    }
    await io().sleep(CREDENTIALS_EVERY_MS);
    try {
      await bound.collectCredentials();
    } catch (err) {
      // A blip is retried until the deadline; a refusal (session ended, …) is final.
      if (!isConnectionFailure(err)) throw err;
    }
  }
  assertNotInterrupted(relay, bound.info.id);
}

export interface Handoff {
  env: Record<string, string>;
  /** Removes whatever was written for the command; safe to call more than once. */
  cleanup: () => void;
}

/**
 * `--credentials file`: a JSON file, 0600, in a fresh directory that only this user can enter,
 * removed when the command exits — and, should this process exit any other way, on its way out.
 */
function credentialFile(sessionId: string, credentials: readonly CredentialView[]): Handoff {
  const dir = mkdtempSync(join(tmpdir(), 'tether-exec-'));
  const cleanup = () => {
    process.off('exit', cleanup);
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  const file = join(dir, 'credentials.json');
  try {
    writeFileSync(file, `${JSON.stringify({ session: sessionId, credentials }, null, 2)}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
  } catch (err) {
    cleanup();
    throw err;
  }
  return { env: { TETHER_SESSION_ID: sessionId, TETHER_CREDENTIALS_FILE: file }, cleanup };
}

/** The command's environment for `how`, and what to remove once it has exited. */
export function handOver(bound: BoundSession, how: CredentialsHow): Handoff {
  const { id, credentials } = bound.info;
  if (how === 'file') return credentialFile(id, credentials);
  return { env: credentialEnv(id, credentials), cleanup: () => undefined };
}

/** What the command is given, on stderr: connectors and usernames, never a secret. */
export function announce(bound: BoundSession, request: RequestView, name: string, how: CredentialsHow): void {
  warn(`tether: session ${bound.info.id} started (request ${request.id}); running ${name}`);
  for (const c of bound.info.credentials) {
    const where =
      how === 'file'
        ? '$TETHER_CREDENTIALS_FILE'
        : `$TETHER_${connectorVariable(c.connector)}_USERNAME / _PASSWORD`;
    warn(`tether: credentials for ${c.connector} (user ${c.username}) in ${where}`);
  }
  const recording = bound.info.recording;
  if (recording)
    warn(
      `tether: this session is recorded (${recording.mode === 'input_and_output' ? 'output and keystrokes' : 'output'}); auditors can replay it`,
    );
}
