import { REQUEST_STATES } from '@tether-broker/protocol';
import type { RequestList } from '@tether-broker/protocol/api';
import { type Command, Option } from 'commander';
import { query } from '../api.js';
import { lookUpNames } from '../names.js';
import { printJson, say } from '../output.js';
import { requestsTable } from '../render.js';
import { withCustomerSeat } from '../seat.js';
import { Session } from '../session.js';

interface RequestsFlags {
  state?: string;
  mine?: boolean;
  principal?: string;
  privilege?: string;
  ticket?: string;
  limit?: number;
}

/** `tether requests`: lists access requests (GET /v1/requests), newest first. */
export function registerRequests(program: Command): void {
  withCustomerSeat(program.command('requests'))
    .description('list access requests')
    .addOption(new Option('--state <state>', 'only in this state').choices(REQUEST_STATES))
    .option('--mine', 'only my own requests')
    .option('--principal <name>', "only this principal's requests")
    .option('--privilege <name>', 'only requests for this privilege')
    .option('--ticket <ref>', 'only requests for this ticket')
    .option('--limit <n>', 'at most this many (default 100)', (v) => Number.parseInt(v, 10))
    .action(async (flags: RequestsFlags, command: Command) => {
      const session = new Session(command);
      // The identity names its principal by id, which the API takes as a reference too.
      const principal = flags.mine ? (await session.ready()).identity.principal : flags.principal;
      const answer = await session.call<RequestList>(
        'GET',
        `/v1/requests${query({ state: flags.state, principal, privilege: flags.privilege, ticket: flags.ticket, limit: flags.limit })}`,
      );
      if (session.json) return printJson(answer);
      const names = await lookUpNames(session, ['principals', 'privileges']);
      say(requestsTable(answer.requests, names));
    });
}
