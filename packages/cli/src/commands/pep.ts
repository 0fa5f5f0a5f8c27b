import type { PepAudiencesAnswer } from '@tether-broker/protocol';
import type { Command } from 'commander';
import { seg } from '../api.js';
import { list, renderFields, say } from '../output.js';
import { Session } from '../session.js';

function audiencesText(a: PepAudiencesAnswer): string {
  return renderFields([
    ['pep', `${a.name} (${a.pep})`],
    ['audiences', a.audiences.length === 0 ? 'none: it may record no decisions' : list(a.audiences)],
  ]);
}

/**
 * `tether pep audiences <pep> [audience...]`: which audiences an enforcement point enforces
 * (`/v1/peps/:pep/audiences`). It may record decisions only for these, about sessions granted
 * for them. With audiences (admins), the list is replaced; `--clear` empties it.
 */
export function registerPep(program: Command): void {
  const pep = program.command('pep').description('enforcement points (principals with the pep role)');
  pep
    .command('audiences')
    .description('show, or set (admins), the audiences an enforcement point enforces')
    .argument('<pep>', 'the PEP principal, by name or id')
    .argument('[audiences...]', 'the audiences it enforces (replaces the list)')
    .option('--clear', 'remove every audience: it may then record no decisions')
    .action(async (ref: string, audiences: string[], flags: { clear?: boolean }, command: Command) => {
      const session = new Session(command);
      const path = `/v1/peps/${seg(ref)}/audiences`;
      const answer =
        audiences.length > 0 || flags.clear
          ? await session.call<PepAudiencesAnswer>('PUT', path, { audiences: flags.clear ? [] : audiences })
          : await session.call<PepAudiencesAnswer>('GET', path);
      session.emit(answer, (a) => say(audiencesText(a)));
    });
}
