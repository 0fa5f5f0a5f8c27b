import { describe, expect, it } from 'vitest';
import {
  emailSubject,
  emailText,
  escapeMrkdwn,
  type NotificationFacts,
  oneLine,
  shouldGiveUp,
  slackMessage,
} from './notification.js';

const facts: NotificationFacts = {
  event: 'request.pending',
  at: Date.UTC(2026, 0, 5),
  tenantId: 'ten_x',
  requestId: 'req_0123456789abcdefghjkmnpqrs',
  privilege: 'db-admin\r\nBcc: x@evil.example',
  requester: 'olivia',
  ticket: null,
  reason: 'a <b> & c\u202e',
  durationSeconds: 5400,
};

describe('notification messages', () => {
  it('flattens requester text to one bounded printable line', () => {
    expect(oneLine('a\r\nb\tc\u0000d\u202ee')).toBe('a b c d e');
    expect(oneLine('x'.repeat(20), 5)).toBe('xxxxx…');
  });

  it('escapes the three mrkdwn control characters, and nothing else', () => {
    expect(escapeMrkdwn('<!here> & <http://x|y> *b*')).toBe('&lt;!here&gt; &amp; &lt;http://x|y&gt; *b*');
  });

  it('keeps CR/LF out of the email subject', () => {
    expect(emailSubject(facts)).toBe(
      '[Tether] Access request waiting for approval: db-admin Bcc: x@evil.example for olivia',
    );
    expect(emailText(facts, 'https://t.example')).toContain(
      'Approve or deny: https://t.example/console/requests/req_0123456789abcdefghjkmnpqrs',
    );
    expect(emailText(facts, 'https://t.example')).toContain('Duration: 90 min');
  });

  it('builds a Slack message whose text carries no raw markup', () => {
    const text = JSON.stringify(slackMessage(facts, 'https://t.example'));
    expect(text).toContain('a &lt;b&gt; &amp; c');
    expect(text).not.toContain('<b>');
  });

  it('gives up at the attempt or age limit, whichever comes first', () => {
    const limits = { maxAttempts: 3, maxAgeMs: 60_000 };
    expect(shouldGiveUp(2, 1000, limits)).toBe(false);
    expect(shouldGiveUp(3, 1000, limits)).toBe(true);
    expect(shouldGiveUp(1, 60_000, limits)).toBe(true);
  });
});
