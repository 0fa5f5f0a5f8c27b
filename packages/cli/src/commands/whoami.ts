import type { PrincipalView, TenantView } from '@tether-broker/protocol/api';
import type { Command } from 'commander';
import { resolveIdentityPath } from '../identity.js';
import { attributes, list, renderFields, say } from '../output.js';
import { Session } from '../session.js';

/** `tether whoami`: who the broker says this identity is (GET /v1/me). */
export function registerWhoami(program: Command): void {
  program
    .command('whoami')
    .description('show the principal and tenant this identity acts as')
    .action(async (_flags: unknown, command: Command) => {
      const session = new Session(command);
      const me = await session.call<{ principal: PrincipalView; tenant: TenantView }>('GET', '/v1/me');
      session.emit(me, ({ principal, tenant }) =>
        say(
          renderFields([
            ['principal', `${principal.name} (${principal.id})`],
            ['kind', principal.kind],
            ['roles', list(principal.roles)],
            ['attributes', attributes(principal.attributes)],
            ['tenant', `${tenant.name} (${tenant.id})`],
            ['broker', session.client().baseUrl],
            ['identity', resolveIdentityPath(session.globals, session.env).path],
          ]),
        ),
      );
    });
}
