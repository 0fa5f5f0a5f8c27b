import { isTetherError } from '@tether-broker/protocol';
import { describe, expect, it } from 'vitest';
import {
  assertSettingsAreCoherent,
  carries,
  endpointForAudit,
  eventsDelivered,
  type StreamSettings,
} from './ssf-stream.js';
import { SESSION_REVOKED, TOKEN_CLAIMS_CHANGE, VERIFICATION } from './ssf-vocabulary.js';

const push = (endpointUrl: string | null, authorization: string | null = null): StreamSettings => ({
  eventsRequested: [],
  method: 'push',
  endpointUrl,
  authorization,
  description: '',
});

function refusalOf(settings: StreamSettings): string | undefined {
  try {
    assertSettingsAreCoherent(settings);
    return undefined;
  } catch (err) {
    if (isTetherError(err)) return err.code;
    throw err;
  }
}

describe('stream settings', () => {
  it.each([
    ['https://saas.example/events', undefined],
    ['https://saas.example:8443/ssf?tenant=a', undefined],
    ['http://127.0.0.1:9000/events', undefined],
    ['http://localhost/events', undefined],
    ['http://[::1]:9000/events', undefined],
    // The shape is fine; the destination is the outbound client's to refuse when the stream is
    // created (`destination_refused`: plain http, private ranges; test/security/ssrf-outbound.test.ts).
    ['http://saas.example/events', undefined],
    ['http://10.0.0.1/events', undefined],
    ['https://user:secret@saas.example/events', 'invalid_request'],
    ['https://saas.example/events#frag', 'invalid_request'],
    ['ftp://saas.example/events', 'invalid_request'],
    ['saas.example/events', 'invalid_request'],
  ])('push endpoint %s → %s', (url, expected) => {
    expect(refusalOf(push(url))).toBe(expected);
  });

  it('needs an endpoint to push to, and none of its own to poll', () => {
    expect(refusalOf(push(null))).toBe('invalid_request');
    const poll: StreamSettings = { ...push(null), method: 'poll' };
    expect(refusalOf(poll)).toBeUndefined();
    expect(refusalOf({ ...poll, endpointUrl: 'https://saas.example/poll' })).toBe('invalid_request');
    expect(refusalOf({ ...poll, authorization: 'Bearer x' })).toBe('invalid_request');
  });

  it('delivers the supported events requested, ignoring the others, and nothing on a disabled stream', () => {
    expect(eventsDelivered([VERIFICATION, TOKEN_CLAIMS_CHANGE, 'urn:x', SESSION_REVOKED])).toEqual([
      SESSION_REVOKED,
      TOKEN_CLAIMS_CHANGE,
    ]);
    expect(carries({ status: 'paused', eventsRequested: [SESSION_REVOKED] }, SESSION_REVOKED)).toBe(true);
    expect(carries({ status: 'disabled', eventsRequested: [SESSION_REVOKED] }, SESSION_REVOKED)).toBe(false);
    expect(carries({ status: 'enabled', eventsRequested: [SESSION_REVOKED] }, TOKEN_CLAIMS_CHANGE)).toBe(
      false,
    );
  });

  it('keeps a URL query (which may hold a token) out of the audit trail', () => {
    expect(endpointForAudit('https://saas.example/hook?token=abc')).toBe('https://saas.example/hook');
    expect(endpointForAudit(null)).toBeNull();
  });
});
