import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IdentityFile } from '@tether-broker/protocol';
import { InvalidArgumentError } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CliError } from './errors.js';
import { forgetSeat, parseCustomer, readSeat, seatIdentity, seatPath, writeSeat } from './seat.js';

const operator: IdentityFile = {
  broker: 'http://127.0.0.1:8700',
  tenant: 'ten_msp',
  principal: 'prn_morgan',
  key: { kty: 'OKP', crv: 'Ed25519', x: 'x', d: 'SECRET-D', kid: 'k1' },
};

describe('--customer: the seat in a customer tenant', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'tether-seat-'));
    env = { TETHER_HOME: home };
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  it('takes tenant names only: nothing that leaves the seats folder', () => {
    expect(parseCustomer('acme-corp')).toBe('acme-corp');
    for (const bad of ['../etc', 'a/b', 'Acme', '', 'a..b'])
      expect(() => parseCustomer(bad)).toThrow(InvalidArgumentError);
    expect(seatPath(operator.broker, 'acme-corp', env)).toBe(
      join(home, 'seats', '127.0.0.1:8700', 'acme-corp.json'),
    );
  });

  it("caches the seat's ids (0600), never the key, and reads them back for the same operator only", () => {
    const seat = {
      broker: operator.broker,
      customer: 'acme-corp',
      tenant: 'ten_acme',
      principal: 'prn_seat',
      operator: { tenant: operator.tenant, principal: operator.principal },
    };
    const path = writeSeat(seat, env);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readSeat(operator, 'acme-corp', env)).toEqual(seat);
    expect(readSeat({ ...operator, principal: 'prn_other' }, 'acme-corp', env)).toBeUndefined();
    expect(readSeat(operator, 'globex', env)).toBeUndefined();
    forgetSeat(operator, 'acme-corp', env);
    expect(readSeat(operator, 'acme-corp', env)).toBeUndefined();
  });

  it("acts with the operator's key as the seat's tenant and principal; a login sign-in cannot", () => {
    expect(seatIdentity(operator, { tenant: 'ten_acme', principal: 'prn_seat' })).toEqual({
      broker: operator.broker,
      tenant: 'ten_acme',
      principal: 'prn_seat',
      key: operator.key,
    });
    const login = { ...operator, login: { token: 't', expires_at: '2026-01-05T11:00:00Z' } };
    expect(() => seatIdentity(login, { tenant: 'ten_acme', principal: 'prn_seat' })).toThrow(CliError);
  });
});
