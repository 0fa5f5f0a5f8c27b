import * as protocol from '@tether-broker/protocol';
import { describe, expect, it } from 'vitest';
import { isTetherError, PRINCIPAL_KINDS, REQUEST_STATES, ROLES } from './wire.js';

describe('the protocol values the CLI keeps a copy of', () => {
  it('equal the protocol package', () => {
    expect(PRINCIPAL_KINDS).toEqual(protocol.PRINCIPAL_KINDS);
    expect(ROLES).toEqual(protocol.ROLES);
    expect(REQUEST_STATES).toEqual(protocol.REQUEST_STATES);
  });

  it('recognise a TetherError, and nothing else', () => {
    expect(isTetherError(new protocol.TetherError('not_found', 'no such request'))).toBe(true);
    expect(isTetherError(new Error('TetherError'))).toBe(false);
    expect(isTetherError({ name: 'TetherError', code: 'not_found', detail: 'x' })).toBe(false);
  });
});
