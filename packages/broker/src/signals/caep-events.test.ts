import { describe, expect, it } from 'vitest';
import { CAEP_EVENT_TYPE_PREFIX, NonConformingEvent, readCaepEvent } from './caep-events.js';

const type = (name: string) => `${CAEP_EVENT_TYPE_PREFIX}${name}`;
const email = { format: 'email', email: 'olivia@acme.example' };

describe('readCaepEvent', () => {
  it.each([
    ['session-revoked', {}, { name: 'session-revoked' }],
    [
      'credential-change',
      { credential_type: 'fido2-roaming', change_type: 'revoke' },
      { name: 'credential-change', credentialType: 'fido2-roaming', changeType: 'revoke' },
    ],
    [
      'device-compliance-change',
      { previous_status: 'compliant', current_status: 'not-compliant' },
      { name: 'device-compliance-change', currentStatus: 'not-compliant' },
    ],
    [
      'assurance-level-change',
      { namespace: 'NIST-AAL', current_level: 'nist-aal1', previous_level: 'nist-aal2' },
      { name: 'assurance-level-change', namespace: 'NIST-AAL', currentLevel: 'nist-aal1' },
    ],
    [
      'risk-level-change',
      { principal: 'USER', current_level: 'HIGH' },
      { name: 'risk-level-change', currentLevel: 'high' },
    ],
    [
      'token-claims-change',
      { claims: { role: 'ro', mfa: true, n: 2, nested: { x: 1 } } },
      { name: 'token-claims-change', claims: { role: 'ro', mfa: 'true', n: '2' } },
    ],
  ])('reads %s', (name, payload, event) => {
    expect(readCaepEvent({ sub_id: email, events: { [type(name)]: payload } })).toEqual({
      type: type(name),
      event,
      subject: email,
      eventTimestamp: undefined,
    });
  });

  it('takes the subject from sub_id, else from the event (older transmitters), and the event time', () => {
    const read = readCaepEvent({
      events: {
        [type('session-revoked')]: {
          subject: { format: 'iss_sub', iss: 'https://idp', sub: 'u1' },
          event_timestamp: 1700000000,
        },
      },
    });
    expect(read.subject).toEqual({ format: 'iss_sub', iss: 'https://idp', sub: 'u1' });
    expect(read.eventTimestamp).toBe(1700000000);
    expect(
      readCaepEvent({
        sub_id: {
          format: 'complex',
          user: email,
          session: { format: 'opaque', id: 'ses_x' },
          device: { format: 'opaque', id: 'd' },
        },
        events: { [type('session-revoked')]: {} },
      }).subject,
    ).toEqual({ format: 'complex', user: email, session: { format: 'opaque', id: 'ses_x' } });
    expect(
      readCaepEvent({
        sub_id: { format: 'phone_number', phone_number: '+1' },
        events: { [type('session-revoked')]: {} },
      }).subject,
    ).toEqual({ format: 'unsupported', name: 'phone_number' });
  });

  it.each([
    ['no events', { sub_id: email }],
    [
      'two events',
      { sub_id: email, events: { [type('session-revoked')]: {}, [type('credential-change')]: {} } },
    ],
    ['an unknown CAEP type', { sub_id: email, events: { [type('session-established')]: {} } }],
    ['a foreign type', { sub_id: email, events: { 'https://example.com/x': {} } }],
    ['a payload that is not an object', { sub_id: email, events: { [type('session-revoked')]: 'x' } }],
    ['no subject', { events: { [type('session-revoked')]: {} } }],
    [
      'a subject without its member',
      { sub_id: { format: 'email' }, events: { [type('session-revoked')]: {} } },
    ],
    [
      'a nested complex subject',
      {
        sub_id: { format: 'complex', user: { format: 'complex' } },
        events: { [type('session-revoked')]: {} },
      },
    ],
    [
      'an unknown compliance status',
      { sub_id: email, events: { [type('device-compliance-change')]: { current_status: 'maybe' } } },
    ],
    [
      'an unknown risk level',
      { sub_id: email, events: { [type('risk-level-change')]: { current_level: 'SEVERE' } } },
    ],
    [
      'a change_type outside the enum',
      {
        sub_id: email,
        events: { [type('credential-change')]: { credential_type: 'x', change_type: 'rotate' } },
      },
    ],
    ['empty claims', { sub_id: email, events: { [type('token-claims-change')]: { claims: {} } } }],
    [
      'a negative event_timestamp',
      { sub_id: email, events: { [type('session-revoked')]: { event_timestamp: -1 } } },
    ],
  ])('refuses %s', (_why, claims) => {
    expect(() => readCaepEvent(claims as Record<string, unknown>)).toThrow(NonConformingEvent);
  });
});
