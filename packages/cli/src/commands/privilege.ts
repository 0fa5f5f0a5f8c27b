import type { PrivilegeList, PrivilegeView } from '@tether-broker/protocol/api';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { seg } from '../api.js';
import { collectAttribute, collectList } from '../attributes.js';
import { formatDuration, parseDuration } from '../duration.js';
import { CliError, EXIT, nothingToChange } from '../errors.js';
import { lookUpNames } from '../names.js';
import { list, printJson, renderTable, say } from '../output.js';
import { privilegeDetails } from '../render.js';
import { Session } from '../session.js';

interface PrivilegeFlags {
  description?: string;
  action?: string[];
  resource?: string[];
  audience?: string[];
  maxDuration?: number;
  tokenTtl?: number;
  idleTimeout?: number | null;
  approvals?: number;
  approverGroup?: string[];
  approver?: string[];
  ticketRequired?: boolean;
  ticketPattern?: string;
  ticketSource?: string;
  ticketOpen?: boolean;
  ticketAssigned?: boolean;
  attr?: Record<string, string>;
  connector?: string[];
  /** False with `--no-connectors` (commander's negation). */
  connectors?: boolean;
  recording?: 'none' | 'output' | 'input_and_output';
}

function parseCount(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError(`${JSON.stringify(text)} is not a whole number`);
  return Number(text);
}

/** An idle timeout: a duration, or `none` for no idle timeout. */
function parseIdleTimeout(text: string): number | null {
  return text.trim() === 'none' ? null : parseDuration(text);
}

/** The privilege fields as flags; `create` and `update` share them. */
function withPrivilegeFlags(command: Command): Command {
  return command
    .option('--description <text>', 'what the privilege is for')
    .option('--action <action>', 'an action it grants, e.g. firewall:rules.write (repeatable)', collectList)
    .option('--resource <resource>', 'a resource (or pattern) it grants them on (repeatable)', collectList)
    .option('--audience <url>', 'an enforcement point that honours it (repeatable)', collectList)
    .option('--max-duration <duration>', 'longest session, e.g. 2h (default 8h)', parseDuration)
    .option('--token-ttl <duration>', 'access-token lifetime, e.g. 5m (default 5m)', parseDuration)
    .option(
      '--idle-timeout <duration>',
      'end a session after this long without activity (a refresh or an allowed request), e.g. 15m; `none` removes it (running sessions keep theirs)',
      parseIdleTimeout,
    )
    .option('--approvals <n>', 'distinct approvals needed (default 1)', parseCount)
    .option('--approver-group <group>', 'approvers must be in this group (repeatable)', collectList)
    .option('--approver <principal>', 'or be this principal (repeatable)', collectList)
    .option('--ticket-required', 'a request must name a ticket')
    .option('--no-ticket-required', 'a ticket is optional')
    .option('--ticket-pattern <regex>', 'tickets must match this (implies --ticket-required)')
    .option(
      '--ticket-source <webhook>',
      'the ticket must be in the register, from this webhook (implies --ticket-required)',
    )
    .option('--ticket-open', 'the ticket must be in the register and open (implies --ticket-required)')
    .option(
      '--ticket-assigned',
      'the ticket must be in the register and assigned to the requester (implies --ticket-required)',
    )
    .option('--attr <key=value>', 'an attribute policies can see (repeatable)', collectAttribute)
    .option(
      '--connector <name>',
      'a connector each session gets a downstream credential from, destroyed at its end (repeatable; replaces the list)',
      collectList,
    )
    .option('--no-connectors', 'sessions get no downstream credentials (update)')
    .addOption(
      new Option(
        '--recording <what>',
        'sessions must run recorded (tether exec on a pseudo-terminal, streamed to the broker): output, input_and_output (keystrokes too), or none',
      ).choices(['none', 'output', 'input_and_output']),
    );
}

/** Flags → the API's body; only what was given, so `update` changes nothing else. */
export function privilegeBody(flags: PrivilegeFlags): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (flags.description !== undefined) body.description = flags.description;
  if (flags.action) body.actions = flags.action;
  if (flags.resource) body.resources = flags.resource;
  if (flags.audience) body.audiences = flags.audience;
  if (flags.maxDuration !== undefined) body.max_duration = flags.maxDuration;
  if (flags.tokenTtl !== undefined) body.token_ttl = flags.tokenTtl;
  if (flags.idleTimeout !== undefined) body.idle_timeout = flags.idleTimeout;
  if (flags.approvals !== undefined || flags.approverGroup || flags.approver) {
    body.approval = {
      ...(flags.approvals === undefined ? {} : { approvals: flags.approvals }),
      ...(flags.approverGroup || flags.approver
        ? { approvers: { groups: flags.approverGroup ?? [], principals: flags.approver ?? [] } }
        : {}),
    };
  }
  const verified = flags.ticketSource !== undefined || flags.ticketOpen || flags.ticketAssigned;
  if (flags.ticketRequired !== undefined || flags.ticketPattern !== undefined || verified) {
    body.ticket = {
      required: flags.ticketRequired ?? true,
      ...(flags.ticketPattern === undefined ? {} : { pattern: flags.ticketPattern }),
      ...(flags.ticketSource === undefined ? {} : { source: flags.ticketSource }),
      ...(flags.ticketOpen ? { open: true } : {}),
      ...(flags.ticketAssigned ? { assigned: true } : {}),
    };
  }
  if (flags.attr) body.attributes = flags.attr;
  if (flags.connector) body.connectors = flags.connector;
  else if (flags.connectors === false) body.connectors = [];
  if (flags.recording !== undefined) body.recording = flags.recording;
  return body;
}

async function show(session: Session, answer: PrivilegeView): Promise<void> {
  if (session.json) return printJson(answer);
  say(privilegeDetails(answer, await lookUpNames(session, ['principals', 'groups'])));
}

/** `tether privilege …`: what can be asked for (/v1/privileges). */
export function registerPrivilege(program: Command): void {
  const privilege = program.command('privilege').description('manage privileges: what can be asked for');
  privilege
    .command('list')
    .description('list the privileges of the tenant')
    .action(async (_f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<PrivilegeList>('GET', '/v1/privileges');
      session.emit(answer, ({ privileges }) =>
        say(
          renderTable(
            ['NAME', 'ACTIONS', 'MAX', 'APPROVALS', 'TICKET', 'DESCRIPTION'],
            privileges.map((p) => [
              p.name,
              list(p.actions),
              formatDuration(p.max_duration),
              String(p.approval.approvals),
              p.ticket.required ? (p.ticket.pattern ?? 'required') : '-',
              p.description || '-',
            ]),
          ),
        ),
      );
    });
  privilege
    .command('show')
    .description('show a privilege')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      await show(session, await session.call<PrivilegeView>('GET', `/v1/privileges/${seg(ref)}`));
    });
  registerEdits(privilege);
}

function registerEdits(privilege: Command): void {
  withPrivilegeFlags(privilege.command('create'))
    .description('create a privilege (needs --action, --resource and --audience)')
    .argument('<name>', 'lower-case name, unique in the tenant')
    .action(async (name: string, flags: PrivilegeFlags, command: Command) => {
      const missing = (['action', 'resource', 'audience'] as const).filter((k) => !flags[k]);
      if (missing.length > 0) {
        throw new CliError(
          'invalid_argument',
          `missing ${missing.map((m) => `--${m}`).join(', ')}`,
          EXIT.usage,
        );
      }
      const session = new Session(command);
      await show(
        session,
        await session.call<PrivilegeView>('POST', '/v1/privileges', { name, ...privilegeBody(flags) }),
      );
    });
  withPrivilegeFlags(privilege.command('update'))
    .description('change a privilege (each given list replaces the old one)')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, flags: PrivilegeFlags, command: Command) => {
      const changes = privilegeBody(flags);
      if (Object.keys(changes).length === 0) throw nothingToChange();
      const session = new Session(command);
      await show(session, await session.call<PrivilegeView>('PATCH', `/v1/privileges/${seg(ref)}`, changes));
    });
  privilege
    .command('delete')
    .description('delete a privilege')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<{ deleted: boolean }>('DELETE', `/v1/privileges/${seg(ref)}`);
      session.emit(answer, () => say(`deleted privilege ${ref}`));
    });
}
