import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CliError } from './errors.js';
import { resolveIdentityPath } from './identity.js';

const HOME = '/srv/tether-home';
const env = (extra: Record<string, string> = {}) => ({ TETHER_HOME: HOME, ...extra });

describe('identity resolution: --identity > --as > TETHER_IDENTITY > default', () => {
  it('prefers --identity over everything', () => {
    expect(
      resolveIdentityPath({ identity: 'me.json', as: 'olivia' }, env({ TETHER_IDENTITY: '/x.json' })),
    ).toEqual({ path: resolve('me.json'), source: '--identity' });
  });

  it('uses --as over TETHER_IDENTITY', () => {
    expect(resolveIdentityPath({ as: 'olivia' }, env({ TETHER_IDENTITY: '/x.json' }))).toEqual({
      path: join(HOME, 'demo', 'olivia.json'),
      source: '--as',
    });
  });

  it('uses TETHER_IDENTITY over the default', () => {
    expect(resolveIdentityPath({}, env({ TETHER_IDENTITY: '/x.json' }))).toEqual({
      path: '/x.json',
      source: 'TETHER_IDENTITY',
    });
  });

  it('falls back to $TETHER_HOME/identity.json; an empty TETHER_IDENTITY counts as unset', () => {
    expect(resolveIdentityPath({}, env({ TETHER_IDENTITY: '' }))).toEqual({
      path: join(HOME, 'identity.json'),
      source: 'default',
    });
  });

  it('defaults TETHER_HOME to ~/.tether', () => {
    expect(resolveIdentityPath({}, { HOME: '/home/someone' }).path).toMatch(/\.tether[/\\]identity\.json$/);
  });

  it.each(['../admin', 'a/b', '/etc/passwd', 'Olivia', ''])(
    'refuses --as %j, which is not a principal name (no path tricks)',
    (name) => {
      expect(() => resolveIdentityPath({ as: name }, env())).toThrow(CliError);
    },
  );
});
