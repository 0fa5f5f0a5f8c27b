import type { ConnectorList, ConnectorView } from '@tether-broker/protocol/api';
import type { Command } from 'commander';
import { seg } from '../api.js';
import { collectList } from '../attributes.js';
import { CliError, EXIT } from '../errors.js';
import { io } from '../io.js';
import { printJson, renderFields, renderTable, say, shortTime } from '../output.js';
import { Session } from '../session.js';

interface CreateFlags {
  urlEnv: string;
  grant?: string[];
}

function details(c: ConnectorView): string {
  return renderFields([
    ['connector', `${c.name} (${c.id})`],
    ['kind', c.kind],
    ['target', c.target],
    ['grants', c.grant_roles.length > 0 ? c.grant_roles.join(', ') : 'none'],
    ['created', shortTime(c.created_at)],
  ]);
}

/**
 * `tether connector add postgres <name> --url-env VAR`: the admin URL carries a password, so it
 * is read from an environment variable, never from the command line (shell history, `ps`).
 */
async function addPostgres(name: string, flags: CreateFlags, command: Command): Promise<void> {
  const session = new Session(command);
  const url = io().env[flags.urlEnv];
  if (!url)
    throw new CliError(
      'invalid_argument',
      `environment variable ${flags.urlEnv} is not set`,
      EXIT.usage,
      'put the admin connection URL (postgres://user:password@host:port/db) in it',
    );
  const created = await session.call<ConnectorView>('POST', '/v1/connectors', {
    name,
    kind: 'postgres',
    url,
    grant_roles: flags.grant ?? [],
  });
  if (session.json) return printJson(created);
  say(details(created));
  say('\nname it in a privilege: tether privilege update <name> --connector ' + created.name);
}

/** `tether connector add postgres | list | show | remove` (/v1/connectors). */
export function registerConnector(program: Command): void {
  const connector = program
    .command('connector')
    .description('downstream systems where each session gets its own credential, destroyed when it ends');
  connector
    .command('add')
    .description('register a downstream system')
    .command('postgres')
    .description(
      'a PostgreSQL database: each session gets a login role, dropped (and its connections cut) at its end',
    )
    .argument('<name>', 'the connector name, unique in the tenant (privileges name it)')
    .option(
      '--url-env <var>',
      'environment variable holding the admin connection URL',
      'TETHER_CONNECTOR_URL',
    )
    .option(
      '--grant <role>',
      "a role each session's login role is made a member of (repeatable)",
      collectList,
    )
    .action(addPostgres);
  connector
    .command('list')
    .description('list the connectors (never their connection URLs)')
    .action(async (_f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<ConnectorList>('GET', '/v1/connectors');
      if (session.json) return printJson(answer);
      if (answer.connectors.length === 0) return say('no connectors');
      say(
        renderTable(
          ['NAME', 'KIND', 'TARGET', 'GRANTS', 'CREATED'],
          answer.connectors.map((c) => [
            c.name,
            c.kind,
            c.target,
            c.grant_roles.join(', '),
            shortTime(c.created_at),
          ]),
        ),
      );
    });
  connector
    .command('show')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<ConnectorView>('GET', `/v1/connectors/${seg(ref)}`);
      if (session.json) return printJson(answer);
      say(details(answer));
    });
  connector
    .command('remove')
    .description('remove a connector no privilege names and no session used')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<{ deleted: boolean }>('DELETE', `/v1/connectors/${seg(ref)}`);
      session.emit(answer, () => say(`removed connector ${ref}`));
    });
}
