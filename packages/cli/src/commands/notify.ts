import type {
  CreatedNotificationChannelView,
  NotificationChannelList,
  NotificationChannelView,
} from '@tether-broker/protocol/api';
import type { Command } from 'commander';
import { seg } from '../api.js';
import { collectList } from '../attributes.js';
import { CliError, EXIT } from '../errors.js';
import { io } from '../io.js';
import { printJson, renderFields, renderTable, say, shortTime } from '../output.js';
import { Session } from '../session.js';

const EVENTS = ['request.pending', 'request.approved', 'request.denied', 'request.expired', 'session.ended'];

interface AddFlags {
  event?: string[];
  urlEnv: string;
  host?: string;
  port?: string;
  tls: string;
  from?: string;
  to?: string[];
  toPeople: boolean;
  format?: string;
  username?: string;
  passwordEnv: string;
}

function details(c: NotificationChannelView): string {
  return renderFields([
    ['channel', `${c.name} (${c.id})`],
    ['kind', c.kind],
    ['events', c.events.join(', ')],
    ['target', c.target],
    ...(c.email
      ? ([
          ['to people', c.email.to_people ? 'yes (approvers; the requester of a decision)' : 'no'],
          ['fixed recipients', c.email.to.join(', ') || 'none'],
        ] as [string, string][])
      : []),
    ...(c.teams ? ([['format', c.teams.format]] as [string, string][]) : []),
    ['last success', c.last_success_at ? shortTime(c.last_success_at) : 'never'],
    ['last failure', c.last_failure_at ? `${shortTime(c.last_failure_at)} (${c.last_error ?? ''})` : 'none'],
    ['created', shortTime(c.created_at)],
  ]);
}

function required(value: string | undefined, flag: string): string {
  if (!value) throw new CliError('invalid_argument', `${flag} is required for this kind`, EXIT.usage);
  return value;
}

/**
 * `tether notify channel add <kind> <name>`: a Slack or Teams URL is a credential and an SMTP
 * password a secret, so both are read from environment variables, never from the command line.
 */
async function add(kind: string, name: string, flags: AddFlags, command: Command): Promise<void> {
  const session = new Session(command);
  const events = flags.event ?? ['request.pending'];
  let body: Record<string, unknown>;
  if (kind === 'email') {
    const password = io().env[flags.passwordEnv];
    body = {
      host: required(flags.host, '--host'),
      port: Number(required(flags.port, '--port')),
      tls: flags.tls,
      from: required(flags.from, '--from'),
      ...(flags.to ? { to: flags.to } : {}),
      ...(flags.toPeople ? {} : { to_people: false }),
      ...(flags.username ? { username: flags.username } : {}),
      ...(password ? { password } : {}),
    };
  } else {
    const url = io().env[flags.urlEnv];
    if (!url)
      throw new CliError('invalid_argument', `environment variable ${flags.urlEnv} is not set`, EXIT.usage);
    body = { url, ...(kind === 'teams' && flags.format ? { format: flags.format } : {}) };
  }
  const created = await session.call<CreatedNotificationChannelView>('POST', '/v1/notification-channels', {
    name,
    kind,
    events,
    ...body,
  });
  if (session.json) return printJson(created);
  say(details(created));
  if (created.signing_secret)
    say(`\nsigning secret (shown once; verify X-Tether-Signature with it): ${created.signing_secret}`);
}

/** `tether notify channel add | list | show | remove` (/v1/notification-channels). */
export function registerNotify(program: Command): void {
  const channel = program
    .command('notify')
    .description('notifications of waiting and resolved requests and ended sessions')
    .command('channel')
    .description('where notifications go: Slack, Teams, email, signed webhooks');
  channel
    .command('add')
    .description('add a channel')
    .argument('<kind>', 'slack, teams, webhook or email')
    .argument('<name>', 'the channel name, unique in the tenant')
    .option('--event <event>', `an event it gets (repeatable; ${EVENTS.join(', ')})`, collectList)
    .option(
      '--url-env <var>',
      'slack, teams, webhook: environment variable holding the URL',
      'TETHER_NOTIFY_URL',
    )
    .option('--host <host>', 'email: the SMTP server')
    .option('--port <port>', 'email: its port')
    .option('--tls <mode>', 'email: implicit, starttls or none', 'starttls')
    .option('--from <address>', 'email: the sender')
    .option('--to <address>', 'email: a fixed recipient, written to as well (repeatable)', collectList)
    .option(
      '--no-to-people',
      "email: fixed recipients only, not the approvers' and requesters' own addresses (their email attribute)",
    )
    .option('--format <format>', 'teams: adaptive_card (default; Workflows webhooks) or message_card')
    .option('--username <user>', 'email: the SMTP user')
    .option(
      '--password-env <var>',
      'email: environment variable holding the SMTP password',
      'TETHER_SMTP_PASSWORD',
    )
    .action(add);
  channel
    .command('list')
    .description('list the channels and how their deliveries go (never their secrets)')
    .action(async (_f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<NotificationChannelList>('GET', '/v1/notification-channels');
      if (session.json) return printJson(answer);
      if (answer.channels.length === 0) return say('no notification channels');
      say(
        renderTable(
          ['NAME', 'KIND', 'EVENTS', 'TARGET', 'LAST ERROR'],
          answer.channels.map((c) => [c.name, c.kind, c.events.join(','), c.target, c.last_error ?? '']),
        ),
      );
    });
  channel
    .command('show')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<NotificationChannelView>(
        'GET',
        `/v1/notification-channels/${seg(ref)}`,
      );
      if (session.json) return printJson(answer);
      say(details(answer));
    });
  channel
    .command('remove')
    .description('remove a channel (its undelivered notifications go with it)')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<{ deleted: boolean }>(
        'DELETE',
        `/v1/notification-channels/${seg(ref)}`,
      );
      session.emit(answer, () => say(`removed notification channel ${ref}`));
    });
}
