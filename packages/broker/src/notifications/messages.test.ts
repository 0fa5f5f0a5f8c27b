import { describe, expect, it } from 'vitest';
import type { ChannelSettings } from '../domain/notification.js';
import { inertCardText, teamsFormatOf } from './messages.js';
import { emailRecipients } from './send.js';

const facts = {
  event: 'request.pending' as const,
  at: 0,
  tenantId: 't',
  requestId: 'req_1',
  privilege: 'db',
  requester: 'olivia',
  ticket: null,
  reason: 'x',
  durationSeconds: 60,
};

describe('inertCardText', () => {
  it.each([
    ['[click](https://evil.example)', String.raw`\[click\]\(https://evil.example\)`],
    ['<https://evil.example|approve>', String.raw`\<https://evil.example\|approve\>`],
    ['**bold** _it_', String.raw`\*\*bold\*\* \_it\_`],
    ['- item', String.raw`\- item`],
    ['1. item', String.raw`1\. item`],
    ['{{DATE(2017-02-14T06:00:00Z)}}', String.raw`\{\{DATE\(2017-02-14T06:00:00Z\)\}\}`],
    ['line\r\n- two', 'line - two'],
    ['CHG-42', 'CHG-42'],
  ])('%j → %j', (input, expected) => {
    expect(inertCardText(input)).toBe(expected);
  });
});

describe('teamsFormatOf', () => {
  it('defaults stored channels without a format to the MessageCard they were made for', () => {
    expect(teamsFormatOf({ kind: 'teams', target: 'x' })).toBe('message_card');
    expect(teamsFormatOf({ kind: 'teams', target: 'x', format: 'adaptive_card' } as ChannelSettings)).toBe(
      'adaptive_card',
    );
  });
});

describe('emailRecipients', () => {
  it('keeps bare addresses only, deduplicated, fixed first, at most 50', () => {
    const people = Array.from({ length: 60 }, (_, i) => `p${i}@example.com`);
    const to = emailRecipients(['Box@example.com'], {
      ...facts,
      people: {
        addresses: [
          'box@example.com',
          'a@example.com\r\nBcc: x@evil.example',
          'a@b.c, d@evil.example',
          ...people,
        ],
        skipped: { no_email: 0, invalid_email: 0, over_limit: 0 },
      },
    });
    expect(to[0]).toBe('Box@example.com');
    expect(to).toHaveLength(50);
    expect(to.join(' ')).not.toContain('evil');
  });
});
