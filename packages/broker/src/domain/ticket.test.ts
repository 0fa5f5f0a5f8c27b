import { TetherError } from '@tether-broker/protocol';
import { describe, expect, it } from 'vitest';
import type { TicketRule } from './privilege.js';
import {
  applyTicketEvent,
  assertTicketSatisfiesRule,
  closedByHand,
  isAssignedTo,
  MANUAL_SOURCE,
  type Ticket,
  type TicketEvent,
} from './ticket.js';

const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
const NOW = T0 + 3_600_000;
const github = { tenantId: 'ten_a', name: 'gh-infra', kind: 'github' as const };

function ticket(changes: Partial<Ticket> = {}): Ticket {
  return {
    tenantId: 'ten_a',
    ref: 'acme/infra#12',
    source: 'gh-infra',
    kind: 'github',
    state: 'open',
    title: 'Open 8443',
    url: 'https://github.com/acme/infra/issues/12',
    assignees: ['olivia-gh'],
    eventAt: T0,
    closedAt: null,
    createdAt: T0,
    updatedAt: T0,
    ...changes,
  };
}

function event(changes: Partial<TicketEvent> = {}): TicketEvent {
  return { ref: 'acme/infra#12', state: 'open', assignees: ['olivia-gh'], at: T0 + 1000, ...changes };
}

function refusal(f: () => unknown): TetherError {
  try {
    f();
  } catch (err) {
    if (err instanceof TetherError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('applyTicketEvent: the event’s own timestamp orders deliveries', () => {
  const cases: {
    name: string;
    current?: Ticket;
    event: TicketEvent;
    expect: { change: string | null; state?: string; assignees?: string[]; eventAt?: number } | 'stale';
  }[] = [
    {
      name: 'a ticket the register did not know is created as reported',
      event: event({ state: 'open', assignees: ['Olivia-GH', 'bob'], title: 'Open 8443' }),
      expect: { change: 'created', state: 'open', assignees: ['bob', 'olivia-gh'] },
    },
    {
      name: 'a newer close closes it',
      current: ticket(),
      event: event({ state: 'closed' }),
      expect: { change: 'closed', state: 'closed', eventAt: T0 + 1000 },
    },
    {
      name: 'an older close after a newer reopen changes nothing',
      current: ticket({ state: 'open', eventAt: T0 + 5000 }),
      event: event({ state: 'closed', at: T0 + 1000 }),
      expect: 'stale',
    },
    {
      name: 'an older open after a newer close changes nothing',
      current: ticket({ state: 'closed', eventAt: T0 + 5000, closedAt: NOW }),
      event: event({ state: 'open', at: T0 + 1000 }),
      expect: 'stale',
    },
    {
      name: 'a newer reopen reopens it',
      current: ticket({ state: 'closed', closedAt: NOW }),
      event: event({ state: 'open' }),
      expect: { change: 'reopened', state: 'open' },
    },
    {
      name: 'a newer unassignment changes the assignees',
      current: ticket(),
      event: event({ assignees: [] }),
      expect: { change: 'updated', state: 'open', assignees: [] },
    },
    {
      name: 'a newer event that says nothing new only moves the clock',
      current: ticket(),
      event: event(),
      expect: { change: null, state: 'open', eventAt: T0 + 1000 },
    },
    {
      name: 'a tie: closed wins over open',
      current: ticket({ state: 'closed', closedAt: NOW }),
      event: event({ state: 'open', at: T0 }),
      expect: 'stale',
    },
    {
      name: 'a tie: a close still closes',
      current: ticket(),
      event: event({ state: 'closed', at: T0 }),
      expect: { change: 'closed', state: 'closed' },
    },
    {
      name: 'a tie: only the assignees both agree on remain',
      current: ticket({ assignees: ['bob', 'olivia-gh'] }),
      event: event({ assignees: ['olivia-gh', 'carol'], at: T0 }),
      expect: { change: 'updated', assignees: ['olivia-gh'] },
    },
    {
      name: 'the same event again (a replay under a new delivery id) changes nothing',
      current: ticket(),
      event: event({ at: T0 }),
      expect: 'stale',
    },
    {
      name: 'an event that does not say who is assigned keeps the assignees',
      current: ticket(),
      event: event({ assignees: undefined, state: 'closed' }),
      expect: { change: 'closed', assignees: ['olivia-gh'] },
    },
  ];
  it.each(cases)('$name', (c) => {
    const applied = applyTicketEvent(c.current, c.event, github, NOW);
    if (c.expect === 'stale') {
      expect(applied).toBeNull();
      return;
    }
    expect(applied).not.toBeNull();
    expect(applied?.change).toBe(c.expect.change);
    if (c.expect.state) expect(applied?.ticket.state).toBe(c.expect.state);
    if (c.expect.assignees) expect(applied?.ticket.assignees).toEqual(c.expect.assignees);
    if (c.expect.eventAt) expect(applied?.ticket.eventAt).toBe(c.expect.eventAt);
  });

  it('dates a close by the broker’s clock and keeps that date while it stays closed', () => {
    const closed = applyTicketEvent(ticket(), event({ state: 'closed' }), github, NOW)?.ticket;
    expect(closed?.closedAt).toBe(NOW);
    const again = applyTicketEvent(
      closed,
      event({ state: 'closed', at: T0 + 9000, title: 'x' }),
      github,
      NOW + 5,
    );
    expect(again?.ticket.closedAt).toBe(NOW);
    const reopened = applyTicketEvent(
      again?.ticket,
      event({ state: 'open', at: T0 + 10_000 }),
      github,
      NOW + 9,
    );
    expect(reopened?.ticket.closedAt).toBeNull();
  });

  it('keeps a ticket to the source that reported it, except one closed by hand', () => {
    const jira = { tenantId: 'ten_a', name: 'jira-net', kind: 'jira' as const };
    expect(refusal(() => applyTicketEvent(ticket(), event(), jira, NOW)).code).toBe('already_exists');
    const manual = ticket({ source: MANUAL_SOURCE, kind: MANUAL_SOURCE, state: 'closed', closedAt: NOW });
    const taken = applyTicketEvent(manual, event({ state: 'open', at: T0 + 1000 }), jira, NOW);
    expect(taken?.ticket).toMatchObject({ source: 'jira-net', kind: 'jira', state: 'open' });
  });
});

describe('closedByHand', () => {
  it('closes a known ticket now, and records an unknown one as closed by hand', () => {
    expect(closedByHand(ticket(), 'ten_a', 'acme/infra#12', NOW)).toMatchObject({
      state: 'closed',
      source: 'gh-infra',
      closedAt: NOW,
      eventAt: NOW,
    });
    expect(closedByHand(undefined, 'ten_a', 'CHG-9', NOW)).toMatchObject({
      ref: 'CHG-9',
      source: MANUAL_SOURCE,
      state: 'closed',
    });
  });

  it('refuses to close a closed ticket', () => {
    expect(refusal(() => closedByHand(ticket({ state: 'closed' }), 'ten_a', 'x', NOW)).code).toBe(
      'ticket_closed',
    );
  });

  it('lets a later event of the ticket system win over the hand close', () => {
    const closed = closedByHand(ticket(), 'ten_a', 'acme/infra#12', NOW);
    expect(applyTicketEvent(closed, event({ at: NOW - 1 }), github, NOW + 1)).toBeNull();
    expect(applyTicketEvent(closed, event({ at: NOW + 1 }), github, NOW + 2)?.change).toBe('reopened');
  });
});

describe('assertTicketSatisfiesRule', () => {
  const ref = 'acme/infra#12';
  const cases: { name: string; rule: TicketRule; ticket?: Ticket; assigned?: boolean; code?: string }[] = [
    { name: 'no verification asked, unknown ticket', rule: { required: true } },
    {
      name: 'no verification asked, closed ticket',
      rule: { required: true },
      ticket: ticket({ state: 'closed' }),
      code: 'ticket_closed',
    },
    { name: 'open asked, unknown ticket', rule: { required: true, open: true }, code: 'ticket_not_found' },
    { name: 'open asked, open ticket', rule: { required: true, open: true }, ticket: ticket() },
    {
      name: 'open asked, closed ticket',
      rule: { required: true, open: true },
      ticket: ticket({ state: 'closed' }),
      code: 'ticket_closed',
    },
    { name: 'source asked, same source', rule: { required: true, source: 'gh-infra' }, ticket: ticket() },
    {
      name: 'source asked, other source',
      rule: { required: true, source: 'jira-net' },
      ticket: ticket(),
      code: 'ticket_not_found',
    },
    {
      name: 'source asked, unknown ticket',
      rule: { required: true, source: 'gh-infra' },
      code: 'ticket_not_found',
    },
    {
      name: 'assigned asked, assigned',
      rule: { required: true, assigned: true },
      ticket: ticket(),
      assigned: true,
    },
    {
      name: 'assigned asked, not assigned',
      rule: { required: true, assigned: true },
      ticket: ticket(),
      code: 'ticket_not_assigned',
    },
    {
      name: 'assigned asked, unknown ticket',
      rule: { required: true, assigned: true },
      code: 'ticket_not_found',
    },
  ];
  it.each(cases)('$name', (c) => {
    const check = () => assertTicketSatisfiesRule(c.rule, ref, c.ticket, c.assigned ?? false);
    if (c.code) expect(refusal(check).code).toBe(c.code);
    else expect(check).not.toThrow();
  });

  it('matches assignees whatever the case, and never an empty identity', () => {
    expect(isAssignedTo(ticket(), 'Olivia-GH')).toBe(true);
    expect(isAssignedTo(ticket(), 'oscar')).toBe(false);
    expect(isAssignedTo(ticket({ assignees: [''] }), '')).toBe(false);
    expect(isAssignedTo(ticket(), undefined)).toBe(false);
  });
});
