import { describe, expect, it } from 'vitest';
import { createEnforcer, type EnforcerOptions } from './enforcer.js';

const options: EnforcerOptions = {
  broker: 'https://broker.example',
  audience: 'https://api.example',
  tenant: 'ten_acme',
  publicBaseUrl: 'https://api.example',
  identity: { principal: 'prn_pep', key: { kty: 'OKP', crv: 'Ed25519', x: 'x', d: 'd' } },
  decisions: false,
};

describe('createEnforcer options', () => {
  it('refuses an unknown option — a misspelt budget is not silently the default', () => {
    expect(() => createEnforcer({ ...options, stalenessBudgetMS: 1000 } as EnforcerOptions)).toThrow(
      'createEnforcer: unknown option stalenessBudgetMS',
    );
    expect(() => createEnforcer({ ...options, clockTolerance: 5 } as EnforcerOptions)).toThrow(TypeError);
  });

  it('refuses a budget that is not a positive number', () => {
    for (const stalenessBudgetMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => createEnforcer({ ...options, stalenessBudgetMs })).toThrow(
        'stalenessBudgetMs must be positive',
      );
  });

  it('accepts every documented option', async () => {
    const enforcer = createEnforcer({ ...options, stalenessBudgetMs: 5000, leewaySeconds: 5 });
    expect(enforcer.state()).toMatchObject({ fresh: false, position: 0, connected: false });
    await enforcer.close();
  });
});
