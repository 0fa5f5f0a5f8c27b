import type { Command } from 'commander';
import { CliError, EXIT } from '../errors.js';
import { printJson, say } from '../output.js';
import { Session } from '../session.js';
import { SessionStore } from '../session-store.js';
import { endAtBroker } from './session.js';

interface RevokeFlags {
  session?: string;
  principal?: string;
  ticket?: string;
  privilege?: string;
  note?: string;
}

/**
 * What `revoke` asks the broker, from the flags: one session by id, or every live session
 * matching the given principal, ticket and privilege (together: all must match).
 */
export function revokeTarget(
  flags: RevokeFlags,
): { session: string } | { selector: { principal?: string; ticket?: string; privilege?: string } } {
  const selector = {
    ...(flags.principal === undefined ? {} : { principal: flags.principal }),
    ...(flags.ticket === undefined ? {} : { ticket: flags.ticket }),
    ...(flags.privilege === undefined ? {} : { privilege: flags.privilege }),
  };
  const selecting = Object.keys(selector).length > 0;
  if (flags.session !== undefined && selecting) {
    throw new CliError(
      'invalid_argument',
      'give --session alone, or --principal / --ticket / --privilege',
      EXIT.usage,
    );
  }
  if (flags.session !== undefined) return { session: flags.session };
  if (!selecting) {
    throw new CliError(
      'invalid_argument',
      'name what to revoke: --session <id>, --principal <ref>, --ticket <ref> or --privilege <ref>',
      EXIT.usage,
    );
  }
  return { selector };
}

/** `tether revoke`: ends sessions now, as an admin (or the holder, for one session). */
export function registerRevoke(program: Command): void {
  program
    .command('revoke')
    .description(
      'end sessions now (reason: revoked): one by id, or every live one of a principal, ticket or privilege',
    )
    .option('--session <id>', 'this session (its holder or an admin)')
    .option('--principal <ref>', 'every live session of this principal (admin; combines with the others)')
    .option('--ticket <ref>', 'every live session for this ticket (admin)')
    .option('--privilege <ref>', 'every live session of this privilege (admin)')
    .option('--note <text>', 'a note recorded with each end')
    .action(async (flags: RevokeFlags, command: Command) => {
      const target = revokeTarget(flags);
      const session = new Session(command);
      const store = SessionStore.fromEnv(session.env);
      if ('session' in target) {
        const { view, removed } = await endAtBroker(session, store, target.session, 'revoked', flags.note);
        if (session.json) return printJson(view);
        say(`revoked session ${view.id}${removed ? '; its local key was deleted' : ''}`);
        return;
      }
      const answer = await session.call<{ revoked: string[] }>('POST', '/v1/sessions/revoke', {
        ...target.selector,
        ...(flags.note === undefined ? {} : { note: flags.note }),
      });
      const removed = answer.revoked.filter((id) => store.remove(id));
      if (session.json) return printJson(answer);
      if (answer.revoked.length === 0) return say('no live session matched; nothing was revoked');
      say(`revoked ${answer.revoked.length} session(s):`);
      for (const id of answer.revoked) say(`  ${id}${removed.includes(id) ? '  (local key deleted)' : ''}`);
    });
}
