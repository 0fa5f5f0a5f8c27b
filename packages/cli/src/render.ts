import type {
  EligibleCustomerList,
  PrincipalView,
  PrivilegeView,
  RelationshipOutcome,
  RelationshipView,
  RequestView,
  TenantView,
} from '@tether-broker/protocol/api';
import { formatDuration } from './duration.js';
import type { Names } from './names.js';
import { attributes, list, renderFields, renderTable, sanitize, shortTime } from './output.js';

/** The requests table: names instead of ids where known. */
export function requestsTable(requests: RequestView[], names: Names): string {
  if (requests.length === 0) return 'no requests';
  return renderTable(
    ['ID', 'PRINCIPAL', 'PRIVILEGE', 'TICKET', 'DURATION', 'STATE', 'CREATED'],
    requests.map((r) => [
      r.id,
      names.of(r.principal),
      names.of(r.privilege),
      r.ticket ?? '-',
      r.kind === 'extension' ? `+${formatDuration(r.duration)} (extension)` : formatDuration(r.duration),
      r.state,
      shortTime(r.created_at),
    ]),
  );
}

/** What is still needed for a pending request, or how it ended. */
export function requestStatus(r: RequestView, names: Names): string {
  const approvals = (r.reviews ?? []).filter((v) => v.decision === 'approve').length;
  switch (r.state) {
    case 'pending':
      return `pending: ${approvals} of ${r.approvals_required} approval(s), expires ${shortTime(r.expires_at)}`;
    case 'approved':
      return r.resolved_by
        ? `approved by ${names.of(r.resolved_by)}`
        : `approved automatically by policy ${list(r.policies)}`;
    default:
      return r.resolved_by ? `${r.state} by ${names.of(r.resolved_by)}` : r.state;
  }
}

/** One request in full. */
export function requestDetails(r: RequestView, names: Names): string {
  const fields = renderFields([
    ['request', r.id],
    ['state', requestStatus(r, names)],
    ['principal', names.of(r.principal)],
    ['privilege', names.of(r.privilege)],
    ...(r.kind === 'extension' ? [['extends', `session ${r.session}`] as [string, string]] : []),
    ['ticket', r.ticket],
    [r.kind === 'extension' ? 'adds' : 'duration', formatDuration(r.duration)],
    ['reason', r.justification],
    ['created', shortTime(r.created_at)],
    ...(r.kind === 'extension'
      ? []
      : [
          ['activate by', r.activation_expires_at ? shortTime(r.activation_expires_at) : undefined] as [
            string,
            string | undefined,
          ],
        ]),
  ]);
  const reviews = (r.reviews ?? []).map(
    (v) =>
      `  ${v.decision} by ${sanitize(names.of(v.reviewer))} at ${shortTime(v.at)}${v.comment ? `: ${sanitize(v.comment)}` : ''}`,
  );
  return reviews.length > 0 ? `${fields}\nreviews:\n${reviews.join('\n')}` : fields;
}

export function principalDetails(p: PrincipalView): string {
  const fields = renderFields([
    ['principal', `${p.name} (${p.id})`],
    ['kind', p.kind],
    ['enabled', p.enabled ? 'yes' : 'no (disabled)'],
    ['roles', list(p.roles)],
    ['attributes', attributes(p.attributes)],
    ...(p.contract
      ? [
          [
            'contract',
            `${p.contract.starts_at ? shortTime(p.contract.starts_at) : 'any time'} to ${p.contract.ends_at ? shortTime(p.contract.ends_at) : 'open-ended'}`,
          ] as [string, string],
        ]
      : []),
    ['created', shortTime(p.created_at)],
    ['updated', shortTime(p.updated_at)],
  ]);
  if (!p.keys) return fields;
  const keys = p.keys.map(
    (k) => `  ${k.kid}  ${String(k.jwk.kty)}/${String(k.jwk.crv)}  added ${shortTime(k.created_at)}`,
  );
  return `${fields}\nkeys:${keys.length === 0 ? ' none' : `\n${keys.join('\n')}`}`;
}

export function privilegeDetails(p: PrivilegeView, names: Names): string {
  const { approvers } = p.approval;
  const who = [
    ...approvers.groups.map((g) => `group ${names.of(g)}`),
    ...approvers.principals.map((x) => names.of(x)),
  ];
  return renderFields([
    ['privilege', `${p.name} (${p.id})`],
    ['description', p.description],
    ['actions', list(p.actions)],
    ['resources', list(p.resources)],
    ['audiences', list(p.audiences)],
    ['max duration', formatDuration(p.max_duration)],
    ['token ttl', formatDuration(p.token_ttl)],
    ['idle timeout', p.idle_timeout === null ? 'none' : formatDuration(p.idle_timeout)],
    [
      'approvals',
      `${p.approval.approvals}${who.length > 0 ? ` from ${who.join(', ')}` : ' from anyone policy allows'}`,
    ],
    [
      'ticket',
      [
        p.ticket.required ? 'required' : 'optional',
        p.ticket.pattern ? `matching ${p.ticket.pattern}` : '',
        p.ticket.source ? `from source ${p.ticket.source}` : '',
        p.ticket.open ? 'open' : '',
        p.ticket.assigned ? 'assigned to the requester' : '',
      ]
        .filter(Boolean)
        .join(', '),
    ],
    ['binding', p.binding.method],
    ['attributes', attributes(p.attributes)],
    ['connectors', p.connectors.length > 0 ? p.connectors.join(', ') : 'none'],
    ['recording', p.recording === 'none' ? 'not required' : p.recording],
    ['updated', shortTime(p.updated_at)],
  ]);
}

/** A relationship's window: `from … to …` (no start: from its acceptance). */
function relationshipWindow(r: RelationshipView): string {
  return `${r.starts_at ? shortTime(r.starts_at) : 'acceptance'} to ${shortTime(r.ends_at)}`;
}

function relationshipState(r: RelationshipView): string {
  if (r.state === 'ended') return `ended ${shortTime(r.ended_at)}${r.end_reason ? ` (${r.end_reason})` : ''}`;
  if (r.state === 'proposed') return "proposed: waits for the customer admin's acceptance";
  return `active since ${shortTime(r.accepted_at)}`;
}

/** The relationships table, from either side. */
export function relationshipsTable(relationships: RelationshipView[]): string {
  if (relationships.length === 0) return 'no relationships';
  return renderTable(
    ['ID', 'NAME', 'PROVIDER', 'CUSTOMER', 'STATE', 'GROUPS', 'PRIVILEGES', 'ENDS'],
    relationships.map((r) => [
      r.id,
      r.name,
      r.provider,
      r.customer,
      r.state,
      list(r.groups),
      list(r.privileges),
      shortTime(r.ends_at),
    ]),
  );
}

/** One relationship in full. */
export function relationshipDetails(r: RelationshipView): string {
  return renderFields([
    ['relationship', `${r.name} (${r.id})`],
    ['state', relationshipState(r)],
    ['provider', `${r.provider}${r.side === 'provider' ? ' (you)' : ''}`],
    ['customer', `${r.customer}${r.side === 'customer' ? ' (you)' : ''}`],
    ['groups', `${list(r.groups)} (the provider's: their members may ask)`],
    ['privileges', `${list(r.privileges)} (the customer's: what they may ask for)`],
    [
      'approvals',
      `${r.approvals.customer} by the customer's approvers` +
        (r.approvals.provider > 0
          ? ` and ${r.approvals.provider} by the provider's (${r.approvals.provider_approvers.join(', ')})`
          : '') +
        ' per request',
    ],
    ['window', relationshipWindow(r)],
    ['proposed', shortTime(r.proposed_at)],
  ]);
}

/** What ending or narrowing a relationship did, after the relationship itself. */
export function relationshipOutcome(o: RelationshipOutcome): string {
  return `${relationshipDetails(o.relationship)}
${renderFields([
  ['sessions ended', String(o.sessions_ended)],
  ['requests cancelled', String(o.requests_cancelled)],
])}`;
}

/** A provider's customers (`GET /v1/customers`). */
export function customersTable(customers: TenantView[]): string {
  if (customers.length === 0) return 'no customers';
  return renderTable(
    ['NAME', 'DISPLAY NAME', 'TIME ZONE', 'CREATED', 'ID'],
    customers.map((c) => [c.name, c.display_name, c.time_zone, shortTime(c.created_at), c.id]),
  );
}

/** Where an operator may ask, and for what (`GET /v1/seats`): one row per privilege. */
export function eligibleCustomersTable(answer: EligibleCustomerList): string {
  if (answer.customers.length === 0) return 'no customer: no active relationship names one of your groups';
  return renderTable(
    ['CUSTOMER', 'DISPLAY NAME', 'PRIVILEGE', 'RELATIONSHIP', 'UNTIL'],
    answer.customers.flatMap((c) =>
      c.privileges.length === 0
        ? [[c.name, c.display_name, '-', '-', '-']]
        : c.privileges.map((p) => [c.name, c.display_name, p.name, p.relationship, shortTime(p.ends_at)]),
    ),
  );
}
