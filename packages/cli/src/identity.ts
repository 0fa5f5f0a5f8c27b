import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tetherHome } from '@tether-broker/client';
import { CliError, EXIT } from './errors.js';
import { io } from './io.js';

/** The global options every verb takes. */
export interface GlobalOptions {
  json?: boolean | undefined;
  as?: string | undefined;
  identity?: string | undefined;
}

/** Where the identity came from, for messages. */
export type IdentitySource = '--identity' | '--as' | 'TETHER_IDENTITY' | 'login' | 'default';

/** The demo identity file of a principal: `$TETHER_HOME/demo/<name>.json`. */
export function demoIdentityPath(name: string, env: NodeJS.ProcessEnv = io().env): string {
  return join(tetherHome(env), 'demo', `${name}.json`);
}

/** The default identity file: `$TETHER_HOME/identity.json`. */
export function defaultIdentityPath(env: NodeJS.ProcessEnv = io().env): string {
  return join(tetherHome(env), 'identity.json');
}

/**
 * Which identity file a command acts with: `--identity <file>`, else `--as <principal>`
 * (`$TETHER_HOME/demo/<principal>.json`), else `TETHER_IDENTITY`, else
 * `$TETHER_HOME/identity.json`.
 *
 * @example
 * ```ts
 * resolveIdentityPath({ as: 'olivia' }, { TETHER_HOME: '/tmp/t' });
 * // { path: '/tmp/t/demo/olivia.json', source: '--as' }
 * ```
 */
export function resolveIdentityPath(
  options: Pick<GlobalOptions, 'as' | 'identity'>,
  env: NodeJS.ProcessEnv = io().env,
): { path: string; source: IdentitySource } {
  if (options.identity) return { path: resolve(options.identity), source: '--identity' };
  if (options.as !== undefined) {
    if (!/^[a-z0-9][a-z0-9._@-]*$/.test(options.as) || options.as.includes('..')) {
      throw new CliError(
        'invalid_argument',
        `--as wants a principal name, not ${JSON.stringify(options.as)}`,
        EXIT.usage,
      );
    }
    return { path: demoIdentityPath(options.as, env), source: '--as' };
  }
  if (env.TETHER_IDENTITY) return { path: resolve(env.TETHER_IDENTITY), source: 'TETHER_IDENTITY' };
  // No identity file of one's own: the sign-in `tether login` made, if there is one.
  const login = join(tetherHome(env), 'login.json');
  if (!existsSync(defaultIdentityPath(env)) && existsSync(login)) return { path: login, source: 'login' };
  return { path: defaultIdentityPath(env), source: 'default' };
}
