import { describe, expect, it } from 'vitest';
import { buildProgram } from '../program.js';
import { closedText } from './ticket.js';
import { createdText } from './webhook.js';

describe('tether webhook add', () => {
  const created = {
    id: 'whk_0123456789abcdefghjkmnpqrs',
    name: 'gh-infra',
    kind: 'github',
    url: 'https://tether.example/v1/webhooks/github/whk_0123456789abcdefghjkmnpqrs',
    assignee_attribute: 'github',
    created_by: 'prn_x',
    created_at: '2026-01-05T10:00:00.000Z',
    secret: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I',
  };

  it('prints the URL and the secret to paste, and where they go', () => {
    const text = createdText(created);
    expect(text).toContain(created.url);
    expect(text).toContain(created.secret);
    expect(text).toMatch(/shown only now/);
    expect(text).toMatch(/Content type: application\/json/);
    expect(createdText({ ...created, kind: 'jira' })).toMatch(/System > WebHooks/);
    expect(createdText({ ...created, kind: 'generic' })).toMatch(/X-Tether-Signature/);
  });

  it('offers one verb per ticket system, and ticket list | show | close', async () => {
    const program = await buildProgram();
    const sub = (name: string) => program.commands.find((c) => c.name() === name);
    const add = sub('webhook')?.commands.find((c) => c.name() === 'add');
    expect(add?.commands.map((c) => c.name())).toEqual(['github', 'jira', 'generic']);
    expect(sub('ticket')?.commands.map((c) => c.name())).toEqual(['list', 'show', 'close']);
  });
});

describe('tether ticket close', () => {
  it('says which sessions ended and which requests were cancelled', () => {
    const ticket = { ref: 'NET-9' } as Parameters<typeof closedText>[0]['ticket'];
    expect(closedText({ ticket, ended_sessions: ['ses_a'], cancelled_requests: [] })).toBe(
      'closed ticket NET-9\n  sessions ended: ses_a\n  requests cancelled: none',
    );
  });
});
