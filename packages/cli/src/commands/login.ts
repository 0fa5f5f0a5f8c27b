import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  createDpopProof,
  exportSessionKey,
  generateSessionKey,
  tetherHome,
  writeIdentity,
} from '@tether-broker/client';
import type { Command } from 'commander';
import { decodeJwt } from 'jose/jwt/decode';
import { CliError, EXIT } from '../errors.js';
import { io } from '../io.js';
import { printJson, sanitize, say, warn } from '../output.js';
import { Session } from '../session.js';

/** Where `tether login` keeps its sign-in (mode 0600): used when there is no identity file. */
export function loginPath(env: NodeJS.ProcessEnv = io().env): string {
  return join(tetherHome(env), 'login.json');
}

interface DeviceAnswer {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete: string;
  expires_in: number;
  interval: number;
}

/** Posts a form to the broker with a DPoP proof by `key`; answers the JSON and the status. */
async function postSigned(
  broker: string,
  path: string,
  form: Record<string, string>,
  key: Awaited<ReturnType<typeof generateSessionKey>>,
) {
  const { fetch, now } = io();
  const proof = await createDpopProof(key, { method: 'POST', url: `${broker}${path}`, now: now() });
  const response = await fetch(`${broker}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof },
    body: new URLSearchParams(form).toString(),
  });
  return {
    status: response.status,
    body: (await response.json().catch(() => ({}))) as Record<string, unknown>,
  };
}

/**
 * `tether login`: sign a person in without a key file (RFC 8628 device authorization). A new
 * key is made here and never leaves this machine; the person confirms the code in the console
 * (passkey or company sign-in); the token the CLI receives is bound to that key.
 */
export function registerLogin(program: Command): void {
  program
    .command('login')
    .description('sign in as yourself through the console (no key file): shows a code to confirm there')
    .requiredOption('--broker <url>', "the broker's URL")
    .requiredOption('--tenant <name>', 'the tenant to sign in to')
    .action(async (flags: { broker: string; tenant: string }, command: Command) => {
      const json = command.optsWithGlobals<{ json?: boolean }>().json === true;
      const broker = flags.broker.replace(/\/+$/, '');
      const key = await generateSessionKey({ extractable: true });
      const started = await postSigned(broker, '/oauth/device_authorization', { tenant: flags.tenant }, key);
      if (started.status !== 200)
        throw new CliError(
          'login_failed',
          `the broker refused to start a sign-in: ${String(started.body.error_description ?? started.status)}`,
          EXIT.refused,
        );
      const device = started.body as unknown as DeviceAnswer;
      warn(
        `To sign in, open ${device.verification_uri} and enter the code ${device.user_code}\n` +
          `(or open ${device.verification_uri_complete}). Waiting…`,
      );
      const { sleep, now } = io();
      const deadline = now() + device.expires_in * 1000;
      let interval = Math.max(1, device.interval) * 1000;
      for (;;) {
        await sleep(interval);
        if (now() >= deadline)
          throw new CliError('login_failed', 'the code expired before it was confirmed', EXIT.refused);
        const polled = await postSigned(
          broker,
          '/oauth/token',
          { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: device.device_code },
          key,
        );
        const error = polled.body.error;
        if (polled.status === 200 && typeof polled.body.access_token === 'string') {
          const token = polled.body.access_token;
          const claims = decodeJwt(token);
          const expiresAt = new Date(((claims.exp as number) ?? 0) * 1000).toISOString();
          writeIdentity(loginPath(), {
            broker,
            tenant: String(claims.tenant),
            principal: String(claims.sub),
            key: (await exportSessionKey(key)) as Record<string, unknown>,
            login: { token, expires_at: expiresAt },
          });
          if (json) printJson({ principal: claims.sub, tenant: claims.tenant, expires_at: expiresAt });
          else say(sanitize(`Signed in as ${String(claims.sub)} until ${expiresAt} (${loginPath()}).`));
          return;
        }
        if (error === 'authorization_pending') continue;
        if (error === 'slow_down') {
          interval += 5000;
          continue;
        }
        throw new CliError(
          'login_failed',
          `sign-in failed: ${String(polled.body.error_description ?? error)}`,
          EXIT.refused,
        );
      }
    });
  program
    .command('logout')
    .description('end the sign-in made by tether login (its token stops working at once)')
    .action(async (_flags: unknown, command: Command) => {
      const session = new Session(command);
      await session.call('POST', '/v1/logins/current/end', {});
      rmSync(loginPath(), { force: true });
      if (!session.json) say('Signed out.');
    });
}
