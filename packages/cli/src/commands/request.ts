import type { RequestView } from '@tether-broker/protocol/api';
import type { Command } from 'commander';
import { parseDuration } from '../duration.js';
import { CliError, EXIT } from '../errors.js';
import { lookUpNames } from '../names.js';
import { printJson, say } from '../output.js';
import { requestDetails } from '../render.js';
import { withCustomerSeat } from '../seat.js';
import { Session } from '../session.js';
import { waitForResolution } from '../wait.js';

interface RequestFlags {
  ticket?: string;
  reason: string;
  duration?: number;
  wait?: boolean;
}

/** `tether request <privilege>`: asks for a privilege (POST /v1/requests). */
export function registerRequest(program: Command): void {
  withCustomerSeat(program.command('request'))
    .description('ask for a privilege, for one task')
    .argument('<privilege>', 'the privilege name')
    .requiredOption('--reason <text>', 'why: what the task is')
    .option('--ticket <ref>', 'the ticket the task belongs to, e.g. NET-1234')
    .option(
      '--duration <duration>',
      'how long, e.g. 30m, 2h, 1h30m (default: 1h or the maximum)',
      parseDuration,
    )
    .option('--wait', 'wait until the request is approved, denied or expires (exit 0 only if approved)')
    .action(async (privilege: string, flags: RequestFlags, command: Command) => {
      const session = new Session(command);
      const created = await session.call<RequestView>('POST', '/v1/requests', {
        privilege,
        justification: flags.reason,
        ...(flags.ticket === undefined ? {} : { ticket: flags.ticket }),
        ...(flags.duration === undefined ? {} : { duration: flags.duration }),
      });
      const final = flags.wait ? await waitForResolution(session, created) : created;
      if (session.json) printJson(final);
      else await printOutcome(session, created, final, flags.wait === true);
      if (flags.wait && final.state !== 'approved') {
        throw new CliError(
          `request_${final.state}`,
          `request ${final.id} ended ${final.state}`,
          EXIT.refused,
        );
      }
    });
}

async function printOutcome(
  session: Session,
  created: RequestView,
  final: RequestView,
  waited: boolean,
): Promise<void> {
  const names = await lookUpNames(session, ['principals', 'privileges']);
  say(requestDetails(final, names));
  if (!waited && created.state === 'pending') {
    say(`\nan approver can run: tether approve ${created.id}   (or: tether approve --ticket <ref>)`);
  }
}
