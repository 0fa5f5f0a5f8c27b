import { describe, expect, it } from 'vitest';
import { revokeTarget } from './revoke.js';

describe('revoke: what is asked of the broker', () => {
  it('one session by id', () => {
    expect(revokeTarget({ session: 'ses_x' })).toEqual({ session: 'ses_x' });
  });

  it('every live session matching all the selectors given', () => {
    expect(revokeTarget({ principal: 'olivia', ticket: 'NET-1' })).toEqual({
      selector: { principal: 'olivia', ticket: 'NET-1' },
    });
    expect(revokeTarget({ privilege: 'firewall-admin', note: 'incident' })).toEqual({
      selector: { privilege: 'firewall-admin' },
    });
  });

  it('refuses nothing to revoke, and a session mixed with selectors', () => {
    expect(() => revokeTarget({ note: 'x' })).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    expect(() => revokeTarget({ session: 'ses_x', principal: 'olivia' })).toThrow(
      expect.objectContaining({ code: 'invalid_argument' }),
    );
  });
});
