import type { PolicySetView, PolicyVersionsView } from '@tether-broker/protocol/api';
import { type Command, InvalidArgumentError } from 'commander';
import { readPolicySet } from '../cedar-files.js';
import { CliError, EXIT } from '../errors.js';
import { lookUpNames } from '../names.js';
import { list, printJson, renderTable, sanitize, say, shortTime, warn } from '../output.js';
import { Session } from '../session.js';

function parseVersion(text: string): number {
  if (!/^[1-9]\d*$/.test(text))
    throw new InvalidArgumentError(`${JSON.stringify(text)} is not a version number`);
  return Number(text);
}

function policyText(set: PolicySetView): string {
  const ids = Object.keys(set.policies).sort();
  if (set.version === 0) return 'no policy set yet: nothing is permitted (tether policy set <file.cedar>)';
  const head = `// policy set version ${set.version}, ${ids.length} policies, set at ${shortTime(set.created_at)}`;
  return [head, ...ids.map((id) => `\n// ${id}\n${set.policies[id]}`)].join('\n');
}

/** `tether policy …`: the tenant's Cedar policy set, versioned (/v1/policies). */
export function registerPolicy(program: Command): void {
  const policy = program.command('policy').description("manage the tenant's Cedar policies");
  policy
    .command('show')
    .description('print the policy set in force, or an earlier version')
    .argument('[version]', 'an earlier version number (see `policy history`)', parseVersion)
    .action(async (version: number | undefined, _f: unknown, command: Command) => {
      const session = new Session(command);
      const path = version === undefined ? '/v1/policies' : `/v1/policies/versions/${version}`;
      session.emit(await session.call<PolicySetView>('GET', path), (set) => say(policyText(set)));
    });
  policy
    .command('set')
    .description('replace the policy set with a .cedar file or a directory of them (validated first)')
    .argument('<path>', 'a .cedar file or a directory of .cedar files')
    .action(async (path: string, _f: unknown, command: Command) => {
      const policies = readPolicySet(path);
      const session = new Session(command);
      const set = await session.call<PolicySetView>('PUT', '/v1/policies', { policies });
      session.emit(set, (s) =>
        say(`policy set version ${s.version}: ${list(Object.keys(s.policies).sort())}`),
      );
    });
  policy
    .command('validate')
    .description('check a .cedar file or directory against the schema, without storing it')
    .argument('<path>', 'a .cedar file or a directory of .cedar files')
    .action(validate);
  policy
    .command('history')
    .description('list the versions of the policy set')
    .action(async (_f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<PolicyVersionsView>('GET', '/v1/policies/versions');
      if (session.json) return printJson(answer);
      const names = await lookUpNames(session, ['principals']);
      say(
        renderTable(
          ['VERSION', 'POLICIES', 'BY', 'AT'],
          answer.versions.map((v) => [
            String(v.version),
            String(v.policies),
            names.of(v.created_by),
            shortTime(v.created_at),
          ]),
        ),
      );
    });
}

async function validate(path: string, _f: unknown, command: Command): Promise<void> {
  const policies = readPolicySet(path);
  const session = new Session(command);
  const answer = await session.call<{ valid: boolean; errors: string[] }>('POST', '/v1/policies/validate', {
    policies,
  });
  session.emit(answer, (a) => {
    if (a.valid) say(`valid: ${Object.keys(policies).length} policies (${list(Object.keys(policies))})`);
    else for (const e of a.errors) warn(`  ${sanitize(e)}`);
  });
  if (!answer.valid) {
    throw new CliError('policy_invalid', `${answer.errors.length} error(s) in ${path}`, EXIT.refused);
  }
}
