import { TetherError } from '@tether-broker/protocol';
import { describe, expect, it } from 'vitest';
import { configFromEnvironment, limitVariable, resolveConfig } from './config.js';
import { DEFAULTS } from './defaults.js';

function refusal(input: unknown): TetherError {
  try {
    resolveConfig(input);
  } catch (err) {
    if (err instanceof TetherError) return err;
    throw err;
  }
  throw new Error('expected the configuration to be refused');
}

describe('limits settings', () => {
  it('fills every limit with its default, and takes the ones given', () => {
    expect(resolveConfig({}).limits).toEqual(DEFAULTS.limits);
    expect(resolveConfig({ limits: { perPrincipal: 5 } }).limits).toEqual({
      ...DEFAULTS.limits,
      perPrincipal: 5,
    });
    expect(resolveConfig({}).metricsToken).toBeUndefined();
  });

  it('reads each limit from its environment variable, and the metrics token', () => {
    expect(limitVariable('perPrincipal')).toBe('TETHER_LIMITS_PER_PRINCIPAL');
    const config = resolveConfig(
      configFromEnvironment({
        TETHER_LIMITS_PER_PRINCIPAL: '5000',
        TETHER_LIMITS_HEADERS_TIMEOUT_MS: '2000',
        TETHER_METRICS_TOKEN: 'scrape-token-0123456789',
      }),
    );
    expect(config.limits).toMatchObject({ perPrincipal: 5000, headersTimeoutMs: 2000 });
    expect(config.metricsToken).toBe('scrape-token-0123456789');
    expect(refusal(configFromEnvironment({ TETHER_LIMITS_WINDOW_SECONDS: '1m' })).detail).toContain(
      '/limits/windowSeconds',
    );
  });

  it('refuses unknown limits, zero limits, and timeouts Node or the streams cannot work with', () => {
    expect(refusal({ limits: { perTenant: 5 } }).detail).toContain('/limits');
    expect(refusal({ limits: { perPrincipal: 0 } }).detail).toContain('/limits/perPrincipal');
    expect(refusal({ limits: { headersTimeoutMs: 5000, requestTimeoutMs: 1000 } }).detail).toContain(
      'headersTimeoutMs',
    );
    expect(refusal({ heartbeatIntervalMs: 5000, limits: { idleTimeoutMs: 5000 } }).detail).toContain(
      'idleTimeoutMs',
    );
  });

  it('refuses a short metrics token without repeating it', () => {
    const detail = refusal({ metricsToken: 'short-secret' }).detail;
    expect(detail).toContain('/metricsToken');
    expect(detail).not.toContain('short-secret');
  });
});
