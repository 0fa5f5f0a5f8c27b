import type { RequestList, RequestView } from '@tether-broker/protocol/api';
import type { Command } from 'commander';
import { query } from '../api.js';
import { CliError, EXIT } from '../errors.js';
import { lookUpNames } from '../names.js';
import { printJson, say } from '../output.js';
import { requestDetails } from '../render.js';
import { withCustomerSeat } from '../seat.js';
import { Session } from '../session.js';

interface TargetFlags {
  ticket?: string;
  comment?: string;
  reason?: string;
}

/**
 * The request a review or cancellation is about: the id given, or the one pending request
 * for `--ticket` (only the caller's own when cancelling). Several candidates is an error
 * that lists them, never a guess.
 */
async function targetRequest(
  session: Session,
  id: string | undefined,
  flags: TargetFlags,
  own: boolean,
): Promise<string> {
  if (id && flags.ticket)
    throw new CliError('invalid_argument', 'give a request id or --ticket, not both', EXIT.usage);
  if (id) return id;
  if (!flags.ticket)
    throw new CliError('invalid_argument', 'give a request id, or --ticket <ref>', EXIT.usage);
  const principal = own ? session.identity.principal : undefined;
  const { requests } = await session.lookup<RequestList>(
    'GET',
    `/v1/requests${query({ state: 'pending', ticket: flags.ticket, principal })}`,
  );
  const [only, ...others] = requests;
  if (!only) {
    throw new CliError(
      'not_found',
      `no pending request${own ? ' of yours' : ''} for ticket ${flags.ticket}`,
      EXIT.refused,
      '`tether requests` lists them all',
    );
  }
  if (others.length > 0) {
    throw new CliError(
      'ambiguous_ticket',
      `${requests.length} pending requests for ticket ${flags.ticket}: ${requests.map((r) => r.id).join(', ')}`,
      EXIT.usage,
      'name one by its id',
    );
  }
  return only.id;
}

async function decide(
  command: Command,
  id: string | undefined,
  flags: TargetFlags,
  verb: 'approve' | 'deny' | 'cancel',
): Promise<void> {
  const session = new Session(command);
  const target = await targetRequest(session, id, flags, verb === 'cancel');
  const body = verb === 'cancel' ? { reason: flags.reason ?? '' } : { comment: flags.comment ?? '' };
  const answer = await session.call<RequestView>(
    'POST',
    `/v1/requests/${encodeURIComponent(target)}/${verb}`,
    body,
  );
  if (session.json) return printJson(answer);
  say(requestDetails(answer, await lookUpNames(session, ['principals', 'privileges'])));
}

/** `tether approve`, `tether deny`, `tether cancel`. */
export function registerReviews(program: Command): void {
  for (const verb of ['approve', 'deny'] as const) {
    // A provider's approver approves on its side through its seat in the customer's tenant.
    withCustomerSeat(program.command(verb))
      .description(`${verb} someone else's pending request`)
      .argument('[id]', 'the request id')
      .option('--ticket <ref>', 'the one pending request for this ticket, instead of an id')
      .option('--comment <text>', 'a comment recorded with the review')
      .action((id: string | undefined, flags: TargetFlags, command: Command) =>
        decide(command, id, flags, verb),
      );
  }
  withCustomerSeat(program.command('cancel'))
    .description('withdraw your own pending request')
    .argument('[id]', 'the request id')
    .option('--ticket <ref>', 'your one pending request for this ticket, instead of an id')
    .option('--reason <text>', 'why it is withdrawn')
    .action((id: string | undefined, flags: TargetFlags, command: Command) =>
      decide(command, id, flags, 'cancel'),
    );
}
