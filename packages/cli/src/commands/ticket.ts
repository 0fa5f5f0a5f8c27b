import type { ClosedTicketView, TicketList, TicketView } from '@tether-broker/protocol/api';
import { type Command, Option } from 'commander';
import { query, seg } from '../api.js';
import { list, printJson, renderFields, renderTable, say, shortTime } from '../output.js';
import { Session } from '../session.js';

function ticketDetails(t: TicketView): string {
  return renderFields([
    ['ticket', t.ref],
    ['state', t.state],
    ['title', t.title],
    ['source', `${t.source} (${t.kind})`],
    ['assignees', list(t.assignees)],
    ['url', t.url],
    ['as of', shortTime(t.event_at)],
    ['closed', shortTime(t.closed_at)],
    ['first seen', shortTime(t.created_at)],
  ]);
}

/** What `tether ticket close` prints: what ended with the ticket. */
export function closedText(answer: ClosedTicketView): string {
  const ended = answer.ended_sessions.length;
  const cancelled = answer.cancelled_requests.length;
  return [
    `closed ticket ${answer.ticket.ref}`,
    `  sessions ended: ${ended === 0 ? 'none' : answer.ended_sessions.join(', ')}`,
    `  requests cancelled: ${cancelled === 0 ? 'none' : answer.cancelled_requests.join(', ')}`,
  ].join('\n');
}

/** `tether ticket list | show | close`: the tenant's ticket register (/v1/tickets). */
export function registerTicket(program: Command): void {
  const ticket = program
    .command('ticket')
    .description('the ticket register: tickets reported by the ticket systems (see tether webhook add)');
  ticket
    .command('list')
    .description('list the tickets the register knows, most recently changed first')
    .addOption(new Option('--state <state>', 'only open or only closed tickets').choices(['open', 'closed']))
    .option('--source <name>', 'only tickets reported by this webhook')
    .option('--limit <n>', 'at most this many (default 100)', (v) => Number.parseInt(v, 10))
    .action(async (flags: { state?: string; source?: string; limit?: number }, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<TicketList>(
        'GET',
        `/v1/tickets${query({ state: flags.state, source: flags.source, limit: flags.limit })}`,
      );
      if (session.json) return printJson(answer);
      if (answer.tickets.length === 0) return say('no tickets');
      say(
        renderTable(
          ['TICKET', 'STATE', 'SOURCE', 'ASSIGNEES', 'AS OF', 'TITLE'],
          answer.tickets.map((t) => [
            t.ref,
            t.state,
            t.source,
            list(t.assignees),
            shortTime(t.event_at),
            t.title,
          ]),
        ),
      );
    });
  ticket
    .command('show')
    .description('show one ticket')
    .argument('<ref>', 'the ticket reference, e.g. NET-7 or acme/infra#12')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<TicketView>('GET', `/v1/tickets/${seg(ref)}`);
      session.emit(answer, (t) => say(ticketDetails(t)));
    });
  ticket
    .command('close')
    .description(
      'close a ticket by hand (for ticket systems without webhooks): its live sessions end, its pending requests are cancelled',
    )
    .argument('<ref>', 'the ticket reference')
    .option('--note <text>', 'why, for the audit trail')
    .action(async (ref: string, flags: { note?: string }, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<ClosedTicketView>(
        'POST',
        `/v1/tickets/${seg(ref)}/close`,
        flags.note ? { note: flags.note } : {},
      );
      session.emit(answer, (a) => say(closedText(a)));
    });
}
