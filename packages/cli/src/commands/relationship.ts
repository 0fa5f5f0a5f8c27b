import type {
  RelationshipChangesBody,
  RelationshipList,
  RelationshipOutcome,
  RelationshipView,
} from '@tether-broker/protocol/api';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { query, seg } from '../api.js';
import { parseDuration } from '../duration.js';
import { CliError, EXIT, nothingToChange } from '../errors.js';
import { io } from '../io.js';
import { say } from '../output.js';
import { relationshipDetails, relationshipOutcome, relationshipsTable } from '../render.js';
import { Session } from '../session.js';

interface ProposeFlags {
  customer: string;
  groups: string[];
  privileges: string[];
  ends: string;
  starts?: string;
  approvals?: number;
  providerApprovals?: number;
  providerApprovers?: string[];
}

interface NarrowFlags {
  groups?: string[];
  privileges?: string[];
  ends?: string;
  approvals?: number;
  providerApprovals?: number;
  providerApprovers?: string[];
}

/** `a,b, c` → `['a', 'b', 'c']`; empty items are refused. */
export function parseNames(text: string): string[] {
  const names = text.split(',').map((n) => n.trim());
  if (names.some((n) => n === '')) throw new InvalidArgumentError('must be a comma-separated list of names');
  return names;
}

/** `--approvals`, `--provider-approvals`: 0 to 5 per side, as the broker takes it. */
export function parseApprovals(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 5) throw new InvalidArgumentError('must be 0 to 5');
  return n;
}

/** The `approvals` member of a body: only the sides given. */
function approvalsOf(flags: Pick<NarrowFlags, 'approvals' | 'providerApprovals' | 'providerApprovers'>) {
  const approvals = {
    ...(flags.approvals === undefined ? {} : { customer: flags.approvals }),
    ...(flags.providerApprovals === undefined ? {} : { provider: flags.providerApprovals }),
    ...(flags.providerApprovers === undefined ? {} : { provider_approvers: flags.providerApprovers }),
  };
  return Object.keys(approvals).length === 0 ? {} : { approvals };
}

/** A duration with a unit (`90d`, `12h`, `1d12h`): read as "from now". */
const RELATIVE = /^(?:\d+[dhms])+$/;

/**
 * A time as the API takes it (RFC 3339): a duration from `now` (`90d`, `12h`) or anything
 * `Date` reads (`2026-06-30`, `2026-06-30T18:00:00Z`).
 *
 * @example
 * ```ts
 * timeFrom('90d', Date.UTC(2026, 0, 1)); // '2026-04-01T00:00:00.000Z'
 * ```
 */
export function timeFrom(text: string, now: number): string {
  const value = text.trim();
  if (RELATIVE.test(value)) return new Date(now + parseDuration(value) * 1000).toISOString();
  const ms = Date.parse(value);
  if (Number.isNaN(ms))
    throw new CliError(
      'invalid_argument',
      `${JSON.stringify(text)} is neither a time (e.g. 2026-06-30T18:00:00Z) nor a duration from now (e.g. 90d)`,
      EXIT.usage,
    );
  return new Date(ms).toISOString();
}

/** The body of `POST /v1/relationships`. */
export function proposalBody(name: string, flags: ProposeFlags, now: number) {
  return {
    customer: flags.customer,
    name,
    groups: flags.groups,
    privileges: flags.privileges,
    ...approvalsOf(flags),
    ...(flags.starts === undefined ? {} : { starts_at: timeFrom(flags.starts, now) }),
    ends_at: timeFrom(flags.ends, now),
  };
}

/** The body of `PATCH /v1/relationships/:id`: only what is given; nothing given is a usage error. */
export function narrowingBody(flags: NarrowFlags, now: number): RelationshipChangesBody {
  const body: RelationshipChangesBody = {
    ...(flags.groups === undefined ? {} : { groups: flags.groups }),
    ...(flags.privileges === undefined ? {} : { privileges: flags.privileges }),
    ...(flags.ends === undefined ? {} : { ends_at: timeFrom(flags.ends, now) }),
    ...approvalsOf(flags),
  };
  if (Object.keys(body).length === 0) throw nothingToChange();
  return body;
}

const groupsHelp = "the provider's groups whose members may ask, comma-separated";
const privilegesHelp = "the customer's privileges they may ask for, comma-separated";
const endsHelp = 'when it ends: a time (2026-06-30T18:00:00Z) or a duration from now (90d)';
const approvalsHelp = "approvals by the customer's approvers each request needs (0-5, default 1)";
const providerApprovalsHelp =
  "approvals by the provider's approvers each request needs (0-5, default 0), each through their seat";
const providerApproversHelp = "the provider's groups whose members approve on its side, comma-separated";

/** `tether relationship …`: a provider's standing with one customer (/v1/relationships). */
export function registerRelationship(program: Command): void {
  const relationship = program
    .command('relationship')
    .description(
      "a provider's relationship with a customer: which provider groups may ask for which customer privileges, until when",
    );
  relationship
    .command('propose')
    .description(
      'propose a relationship to a customer; nothing is usable until its admin accepts (provider admin)',
    )
    .argument('<name>', 'a name for it, e.g. managed-network')
    .requiredOption('--customer <name>', 'the customer tenant')
    .requiredOption('--groups <names>', groupsHelp, parseNames)
    .requiredOption('--privileges <names>', privilegesHelp, parseNames)
    .requiredOption('--ends <time>', endsHelp)
    .option('--starts <time>', 'when it starts (default: at acceptance); a time or a duration from now')
    .option('--approvals <n>', approvalsHelp, parseApprovals)
    .option('--provider-approvals <n>', providerApprovalsHelp, parseApprovals)
    .option('--provider-approvers <names>', providerApproversHelp, parseNames)
    .action(async (name: string, flags: ProposeFlags, command: Command) => {
      const session = new Session(command);
      const body = proposalBody(name, flags, io().now());
      const proposed = await session.call<RelationshipView>('POST', '/v1/relationships', body);
      session.emit(proposed, (r) => {
        say(relationshipDetails(r));
        say(`\nthe customer's admin accepts it with: tether relationship accept ${r.id}`);
      });
    });
  relationship
    .command('accept')
    .description(
      "accept a proposed relationship: the provider's operators may ask from now on (customer admin)",
    )
    .argument('<id>', 'the relationship id')
    .action(async (id: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const accepted = await session.call<RelationshipView>(
        'POST',
        `/v1/relationships/${seg(id)}/accept`,
        {},
      );
      session.emit(accepted, (r) => say(relationshipDetails(r)));
    });
  relationship
    .command('end')
    .description(
      'end a relationship (or withdraw or decline a proposal): its sessions end and its pending requests are cancelled (either admin)',
    )
    .argument('<id>', 'the relationship id')
    .action(async (id: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const done = await session.call<RelationshipOutcome>('POST', `/v1/relationships/${seg(id)}/end`, {});
      session.emit(done, (o) => say(relationshipOutcome(o)));
    });
  relationship
    .command('narrow')
    .description(
      'narrow a relationship: fewer groups or privileges, an earlier end, more approvals (either admin); what falls outside ends at once',
    )
    .argument('<id>', 'the relationship id')
    .option('--groups <names>', `${groupsHelp} (a subset of the current ones)`, parseNames)
    .option('--privileges <names>', `${privilegesHelp} (a subset of the current ones)`, parseNames)
    .option('--ends <time>', `${endsHelp} (earlier than now set)`)
    .option('--approvals <n>', `${approvalsHelp} (more than now set)`, parseApprovals)
    .option('--provider-approvals <n>', `${providerApprovalsHelp} (more than now set)`, parseApprovals)
    .option('--provider-approvers <names>', `${providerApproversHelp} (fewer than now)`, parseNames)
    .action(async (id: string, flags: NarrowFlags, command: Command) => {
      const body = narrowingBody(flags, io().now());
      const session = new Session(command);
      const done = await session.call<RelationshipOutcome>('PATCH', `/v1/relationships/${seg(id)}`, body);
      session.emit(done, (o) => say(relationshipOutcome(o)));
    });
  relationship
    .command('show')
    .description('show a relationship (either side)')
    .argument('<id>', 'the relationship id')
    .action(async (id: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const r = await session.call<RelationshipView>('GET', `/v1/relationships/${seg(id)}`);
      session.emit(r, (v) => say(relationshipDetails(v)));
    });
  relationship
    .command('list')
    .description("list the tenant's relationships (either side)")
    .addOption(new Option('--state <state>', 'only in this state').choices(['proposed', 'active', 'ended']))
    .action(async (flags: { state?: string }, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<RelationshipList>(
        'GET',
        `/v1/relationships${query({ state: flags.state })}`,
      );
      session.emit(answer, (a) => say(relationshipsTable(a.relationships)));
    });
}
