import type { CustomerView } from '@tether-broker/protocol/api';
import { describe, expect, it } from 'vitest';
import { describeNewCustomer, newCustomerBody } from './customer.js';

const KEY = { kty: 'OKP', crv: 'Ed25519', x: 'abc' };

describe('customer add: what is asked of the broker, and what is said', () => {
  it("sends the admin's name and public key, and only the options given", () => {
    expect(newCustomerBody('acme-corp', { admin: 'cathy', adminKey: 'k.json' }, KEY)).toEqual({
      name: 'acme-corp',
      admin: { name: 'cathy', key: KEY },
    });
    expect(
      newCustomerBody(
        'acme-corp',
        { admin: 'cathy', adminKey: 'k', displayName: 'Acme', timeZone: 'Europe/Paris' },
        KEY,
      ),
    ).toMatchObject({ display_name: 'Acme', time_zone: 'Europe/Paris' });
  });

  it("says which tenant and admin were made, and the identity the customer's admin acts with", () => {
    const made = {
      tenant: {
        id: 'ten_1',
        name: 'acme-corp',
        display_name: 'Acme Corp',
        time_zone: 'UTC',
        created_at: '2026-01-05T10:00:00.000Z',
        kind: 'customer',
      },
      admin: {
        id: 'prn_1',
        name: 'cathy',
        kind: 'human',
        enabled: true,
        roles: ['admin'],
        attributes: {},
        created_at: '2026-01-05T10:00:00.000Z',
        updated_at: '2026-01-05T10:00:00.000Z',
      },
    } as unknown as CustomerView;
    const text = describeNewCustomer(made, 'https://broker.example');
    expect(text).toMatch(/customer:\s+acme-corp \(ten_1\)/);
    expect(text).toContain('"tenant":"ten_1","principal":"prn_1"');
    expect(text).toContain('--customer acme-corp');
  });
});
