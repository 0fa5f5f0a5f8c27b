import { describe, expect, it } from 'vitest';
import { privilegeBody } from './privilege.js';

describe('privilege flags → API body', () => {
  it('sends only what was given, so an update leaves the rest alone', () => {
    expect(privilegeBody({ tokenTtl: 120 })).toEqual({ token_ttl: 120 });
    expect(privilegeBody({})).toEqual({});
  });

  it('maps every flag to its API field', () => {
    expect(
      privilegeBody({
        description: 'read prod',
        action: ['db:read'],
        resource: ['db/prod'],
        audience: ['https://db.example'],
        maxDuration: 5400,
        approvals: 2,
        approverGroup: ['dba'],
        ticketPattern: 'INC-[0-9]+',
        attr: { risk: 'high' },
      }),
    ).toEqual({
      description: 'read prod',
      actions: ['db:read'],
      resources: ['db/prod'],
      audiences: ['https://db.example'],
      max_duration: 5400,
      approval: { approvals: 2, approvers: { groups: ['dba'], principals: [] } },
      ticket: { required: true, pattern: 'INC-[0-9]+' },
      attributes: { risk: 'high' },
    });
  });

  it('a ticket pattern implies a required ticket unless --no-ticket-required says otherwise', () => {
    expect(privilegeBody({ ticketPattern: 'X-1' }).ticket).toEqual({ required: true, pattern: 'X-1' });
    expect(privilegeBody({ ticketRequired: false }).ticket).toEqual({ required: false });
  });

  it('a verified ticket rule names its source, and may ask for an open ticket assigned to the requester', () => {
    expect(
      privilegeBody({ ticketSource: 'gh-infra', ticketOpen: true, ticketAssigned: true }).ticket,
    ).toEqual({
      required: true,
      source: 'gh-infra',
      open: true,
      assigned: true,
    });
  });

  it('sends an idle timeout in seconds, and null (--idle-timeout none) to remove it', () => {
    expect(privilegeBody({ idleTimeout: 900 })).toEqual({ idle_timeout: 900 });
    expect(privilegeBody({ idleTimeout: null })).toEqual({ idle_timeout: null });
  });
});
