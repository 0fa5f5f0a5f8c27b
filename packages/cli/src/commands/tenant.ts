import type { TenantCutoffBody, TenantCutoffView } from '@tether-broker/protocol/api';
import { type Command, InvalidArgumentError } from 'commander';
import { renderFields, say } from '../output.js';
import { Session } from '../session.js';

/** As the broker takes it (`POST /v1/tenant/cutoff`): 1 to 200 characters, not only blanks. */
const REASON_MAX = 200;

/** Reads `--reason`: refused here, before any call, when the broker would refuse it. */
export function parseReason(text: string): string {
  if (text.trim() === '') throw new InvalidArgumentError('must say why (it goes into the audit trail)');
  if (text.length > REASON_MAX) throw new InvalidArgumentError(`must be at most ${REASON_MAX} characters`);
  return text;
}

/** The request body from the flags. */
export function cutoffBody(flags: { reason: string; endSessions?: boolean }): TenantCutoffBody {
  return { reason: flags.reason, end_sessions: flags.endSessions === true };
}

/** The human answer: when the cut-off falls, its place in the log, the sessions it ended. */
export function describeCutoff(answer: TenantCutoffView): string {
  const ended = answer.ended_sessions;
  return [
    renderFields([
      ['cut-off', new Date(answer.before * 1000).toISOString().replace('.000Z', 'Z')],
      ['event', `#${answer.seq} of the revocation log`],
      [
        'ended',
        ended.length === 0
          ? 'no session (live ones get new tokens by refreshing)'
          : `${ended.length} session(s)`,
      ],
    ]),
    ...ended.map((id) => `  ${id}`),
  ].join('\n');
}

/** `tether tenant …`: tenant-wide actions of an admin. */
export function registerTenant(program: Command): void {
  const tenant = program
    .command('tenant')
    .description("tenant-wide actions (admin of the identity's tenant)");
  tenant
    .command('cutoff')
    .description(
      'refuse every token of the tenant issued until now, at every enforcement point (admin); live sessions get new tokens by refreshing',
    )
    .requiredOption('--reason <text>', 'why, for the audit trail (1-200 characters)', parseReason)
    .option('--end-sessions', 'also end every live session of the tenant (reason: tenant_cutoff)')
    .action(async (flags: { reason: string; endSessions?: boolean }, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<TenantCutoffView>('POST', '/v1/tenant/cutoff', cutoffBody(flags));
      session.emit(answer, (a) => say(describeCutoff(a)));
    });
}
