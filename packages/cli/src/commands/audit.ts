import type { AuditRecordList, AuditVerificationView } from '@tether-broker/protocol/api';
import type { Command } from 'commander';
import { query } from '../api.js';
import { CliError, EXIT } from '../errors.js';
import { lookUpNames } from '../names.js';
import { printJson, renderTable, say, shortTime } from '../output.js';
import { Session } from '../session.js';

interface AuditFlags {
  request?: string;
  ticket?: string;
  principal?: string;
  since?: string;
  until?: string;
  limit?: number;
}

function isoTime(text: string): string {
  const ms = Date.parse(text);
  if (Number.isNaN(ms))
    throw new CliError('invalid_argument', `${JSON.stringify(text)} is not a date/time`, EXIT.usage);
  return new Date(ms).toISOString();
}

/** `tether audit` and `tether audit verify`: the tamper-evident record (/v1/audit). */
export function registerAudit(program: Command): void {
  const audit = program
    .command('audit')
    .description('show audit records (filters combine), or verify the chain: audit verify')
    .option('--request <id>', 'records about this request')
    .option('--ticket <ref>', 'records about this ticket')
    .option('--principal <name>', 'records about this principal')
    .option('--since <time>', 'from this time (ISO 8601)')
    .option('--until <time>', 'until this time (ISO 8601)')
    .option('--limit <n>', 'at most this many (default 200)', (v) => Number.parseInt(v, 10))
    .action(listRecords);
  audit
    .command('verify')
    .description("check the tenant's audit hash chain; exits 1 at the first bad record")
    .action(verify);
}

async function listRecords(flags: AuditFlags, command: Command): Promise<void> {
  const session = new Session(command);
  const path = `/v1/audit${query({
    request: flags.request,
    ticket: flags.ticket,
    principal: flags.principal,
    since: flags.since === undefined ? undefined : isoTime(flags.since),
    until: flags.until === undefined ? undefined : isoTime(flags.until),
    limit: flags.limit,
  })}`;
  const answer = await session.call<AuditRecordList>('GET', path);
  if (session.json) return printJson(answer);
  const names = await lookUpNames(session, ['principals', 'privileges', 'groups']);
  say(
    answer.records.length === 0
      ? 'no audit records'
      : renderTable(
          ['SEQ', 'AT', 'ACTOR', 'ACTION', 'OUTCOME', 'TARGET', 'TICKET'],
          answer.records.map((r) => [
            String(r.seq),
            shortTime(r.at),
            names.of(r.actor),
            r.action,
            r.outcome,
            names.of(r.target),
            r.ticket ?? '-',
          ]),
        ),
  );
}

async function verify(_f: unknown, command: Command): Promise<void> {
  const session = new Session(command);
  const answer = await session.call<AuditVerificationView>('GET', '/v1/audit/verify');
  session.emit(answer, (a) => {
    if (a.ok) say(`audit chain ok: ${a.checked} records verified`);
  });
  if (!answer.ok) {
    const bad = answer.first_bad;
    throw new CliError(
      'audit_chain_broken',
      bad
        ? `first bad record: seq ${bad.seq} (${bad.id}): ${bad.fault}: ${bad.message}`
        : `the chain does not verify (${answer.checked} records checked)`,
      EXIT.refused,
      'the records from there on cannot be trusted; compare with a backup or an exported copy',
    );
  }
}
