import type { GroupList, GroupView } from '@tether-broker/protocol/api';
import type { Command } from 'commander';
import { seg } from '../api.js';
import { lookUpNames } from '../names.js';
import { list, printJson, renderFields, renderTable, say, shortTime } from '../output.js';
import { Session } from '../session.js';

/** `tether group …`: groups of principals, for policies and approver lists (/v1/groups). */
export function registerGroup(program: Command): void {
  const group = program.command('group').description('manage groups of principals');
  group
    .command('list')
    .description('list the groups of the tenant')
    .action(async (_f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<GroupList>('GET', '/v1/groups');
      session.emit(answer, ({ groups }) =>
        say(
          renderTable(
            ['NAME', 'DESCRIPTION', 'ID'],
            groups.map((g) => [g.name, g.description || '-', g.id]),
          ),
        ),
      );
    });
  group
    .command('show')
    .description('show a group and its members')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<GroupView>('GET', `/v1/groups/${seg(ref)}`);
      if (session.json) return printJson(answer);
      const names = await lookUpNames(session, ['principals']);
      say(
        renderFields([
          ['group', `${answer.name} (${answer.id})`],
          ['description', answer.description],
          ['members', list((answer.members ?? []).map((m) => names.of(m)).sort())],
          ['created', shortTime(answer.created_at)],
        ]),
      );
    });
  group
    .command('create')
    .description('create a group')
    .argument('<name>', 'lower-case name, unique in the tenant')
    .option('--description <text>', 'what the group is for')
    .action(async (name: string, flags: { description?: string }, command: Command) => {
      const session = new Session(command);
      const body = { name, ...(flags.description === undefined ? {} : { description: flags.description }) };
      const answer = await session.call<GroupView>('POST', '/v1/groups', body);
      session.emit(answer, (g) => say(`created group ${g.name} (${g.id})`));
    });
  group
    .command('delete')
    .description('delete a group')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<{ deleted: boolean }>('DELETE', `/v1/groups/${seg(ref)}`);
      session.emit(answer, () => say(`deleted group ${ref}`));
    });
  registerMembership(group);
}

function registerMembership(group: Command): void {
  for (const [verb, method, word] of [
    ['add', 'PUT', 'added to'],
    ['remove', 'DELETE', 'removed from'],
  ] as const) {
    group
      .command(verb)
      .description(`${verb} a member`)
      .argument('<group>', 'group name or id')
      .argument('<principal>', 'principal name or id')
      .action(async (ref: string, principal: string, _f: unknown, command: Command) => {
        const session = new Session(command);
        const answer = await session.call<{ changed: boolean }>(
          method,
          `/v1/groups/${seg(ref)}/members/${seg(principal)}`,
        );
        session.emit(answer, (a) =>
          say(
            a.changed
              ? `${principal} ${word} ${ref}`
              : `no change: ${principal} was already ${verb === 'add' ? 'in' : 'not in'} ${ref}`,
          ),
        );
      });
  }
}
