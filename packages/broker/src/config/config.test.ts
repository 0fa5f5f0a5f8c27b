import { randomBytes } from 'node:crypto';
import { isTetherError, type TetherError } from '@tether-broker/protocol';
import { describe, expect, it } from 'vitest';
import { configFromEnvironment, resolveConfig } from './config.js';
import { DEFAULTS } from './defaults.js';

function refusal(input: unknown): TetherError {
  try {
    resolveConfig(input);
  } catch (err) {
    if (isTetherError(err)) return err;
    throw err;
  }
  throw new Error('expected the configuration to be refused');
}

describe('resolveConfig', () => {
  it('fills every default from an empty configuration', () => {
    const config = resolveConfig({});
    expect(config).toMatchObject({ port: 8700, host: '127.0.0.1', publicUrl: 'http://127.0.0.1:8700' });
    expect(config.database).toBeUndefined();
    expect(config.kek).toBeUndefined();
    // Every other setting comes from defaults.ts, the one place defaults live.
    for (const [key, value] of Object.entries(DEFAULTS)) {
      if (key === 'publicUrl') continue; // derived from host and port, checked above
      expect(config[key as keyof typeof config], key).toEqual(value);
    }
    expect(Object.keys(config).sort()).toEqual(Object.keys(DEFAULTS).sort());
  });

  it('derives the public URL from host and port when it is not set', () => {
    expect(resolveConfig({ host: '0.0.0.0', port: 9000 }).publicUrl).toBe('http://0.0.0.0:9000');
    expect(resolveConfig({ host: '::1' }).publicUrl).toBe('http://[::1]:8700');
  });

  it('keeps an explicit public URL, without a trailing slash', () => {
    expect(resolveConfig({ publicUrl: 'https://tether.example/' }).publicUrl).toBe('https://tether.example');
    expect(resolveConfig({ publicUrl: 'https://tether.example/base' }).publicUrl).toBe(
      'https://tether.example/base',
    );
  });

  it('accepts well-formed values and keeps them', () => {
    const kek = randomBytes(32).toString('base64url');
    const config = resolveConfig({
      host: '::',
      port: 0,
      dataDir: '/var/lib/tether',
      database: 'postgresql://tether@db/tether',
      publicUrl: 'https://tether.example',
      requestTtlSeconds: 600,
      activationWindowSeconds: 600,
      apiTokenTtlSeconds: 300,
      clientAssertionMaxAgeSeconds: 60,
      clockToleranceSeconds: 0,
      sweepIntervalMs: 1000,
      bodyLimitBytes: 4096,
      logLevel: 'warn',
      kek,
    });
    expect(config).toMatchObject({
      port: 0,
      database: 'postgresql://tether@db/tether',
      logLevel: 'warn',
      kek,
    });
  });

  it('refuses an unknown key with invalid_request naming the key', () => {
    const err = refusal({ port: 8700, prot: 8701 });
    expect(err.code).toBe('invalid_request');
    expect(err.detail).toContain('/prot');
    expect(err.detail).toMatch(/unexpected property/i);
  });

  it('names every problem at once, not only the first', () => {
    const err = refusal({ colour: 'blue', port: 'eighty' });
    expect(err.detail).toContain('/colour');
    expect(err.detail).toContain('/port');
  });

  const wrongTypes: [string, unknown, string][] = [
    ['port as a string', { port: '8700' }, '/port'],
    ['port out of range', { port: 65536 }, '/port'],
    ['port not an integer', { port: 87.5 }, '/port'],
    ['host as a number', { host: 127 }, '/host'],
    ['an empty host', { host: '' }, '/host'],
    ['a database that is not a PostgreSQL URL', { database: 'mysql://db/tether' }, '/database'],
    ['a public URL with a query', { publicUrl: 'https://tether.example/?x=1' }, '/publicUrl'],
    ['a public URL without a scheme', { publicUrl: 'tether.example' }, '/publicUrl'],
    ['an unknown log level', { logLevel: 'loud' }, '/logLevel'],
    ['a request TTL below its floor', { requestTtlSeconds: 59 }, '/requestTtlSeconds'],
    ['a boolean for a number', { sweepIntervalMs: true }, '/sweepIntervalMs'],
  ];
  it.each(wrongTypes)('refuses %s', (_name, input, path) => {
    const err = refusal(input);
    expect(err.code).toBe('invalid_request');
    expect(err.status).toBe(400);
    expect(err.detail).toContain(path);
  });

  it.each([null, 'port=8700', 42, []])('refuses a configuration that is not an object: %j', (input) => {
    expect(refusal(input).code).toBe('invalid_request');
  });

  const badKeks: [string, unknown][] = [
    ['too short', 'c2VjcmV0LWtlay12YWx1ZS1YWVo'],
    ['too long', `${randomBytes(32).toString('base64url')}AAAA`],
    ['standard base64 rather than base64url', `Zm9vYmFyYmF6cXV4+/${'Q'.repeat(25)}`],
    ['a passphrase', 'correct horse battery staple, my secret kek!'],
  ];
  it.each(badKeks)('refuses a kek that is %s without echoing it', (_name, kek) => {
    const err = refusal({ kek });
    expect(err.code).toBe('invalid_request');
    expect(err.detail).toContain('/kek');
    const secret = String(kek);
    for (const text of [err.detail, err.message, JSON.stringify(err), String(err.stack)]) {
      expect(text).not.toContain(secret);
      // Not even a recognisable piece of it.
      expect(text).not.toContain(secret.slice(0, 12));
    }
  });

  it('refuses a kek of the wrong type without echoing it', () => {
    const err = refusal({ kek: { value: 'hunter2-hunter2' } });
    expect(err.detail).toContain('/kek');
    expect(err.detail).not.toContain('hunter2');
  });
});

describe('configFromEnvironment', () => {
  it('maps each documented variable onto its setting', () => {
    const kek = randomBytes(32).toString('base64url');
    expect(
      configFromEnvironment({
        TETHER_HOST: '0.0.0.0',
        TETHER_PORT: '9100',
        TETHER_DATA: '/srv/tether',
        DATABASE_URL: 'postgres://tether@db/tether',
        TETHER_PUBLIC_URL: 'https://tether.example',
        TETHER_LOG_LEVEL: 'debug',
        TETHER_KEK: kek,
      }),
    ).toEqual({
      host: '0.0.0.0',
      port: 9100,
      dataDir: '/srv/tether',
      database: 'postgres://tether@db/tether',
      publicUrl: 'https://tether.example',
      logLevel: 'debug',
      kek,
    });
  });

  it('reads the port as a number, so the result passes validation', () => {
    const config = resolveConfig(configFromEnvironment({ TETHER_PORT: '9100' }));
    expect(config.port).toBe(9100);
    expect(config.publicUrl).toBe('http://127.0.0.1:9100');
  });

  it('reads the PEP liveness window as a number, and validation bounds it', () => {
    const config = resolveConfig(configFromEnvironment({ TETHER_PEP_LIVENESS_SECONDS: '45' }));
    expect(config.pepLivenessSeconds).toBe(45);
    expect(refusal(configFromEnvironment({ TETHER_PEP_LIVENESS_SECONDS: '0' })).detail).toContain(
      '/pepLivenessSeconds',
    );
    expect(refusal(configFromEnvironment({ TETHER_PEP_LIVENESS_SECONDS: '30s' })).detail).toContain(
      '/pepLivenessSeconds',
    );
  });

  it('reads the heartbeat interval as a number (PEPs with a budget under 2 s need it shorter)', () => {
    expect(
      resolveConfig(configFromEnvironment({ TETHER_HEARTBEAT_INTERVAL_MS: '100' })).heartbeatIntervalMs,
    ).toBe(100);
    expect(refusal(configFromEnvironment({ TETHER_HEARTBEAT_INTERVAL_MS: '5' })).detail).toContain(
      '/heartbeatIntervalMs',
    );
  });

  it('leaves a non-numeric port as text for validation to refuse', () => {
    const input = configFromEnvironment({ TETHER_PORT: '80abc' });
    expect(input).toEqual({ port: '80abc' });
    expect(refusal(input).detail).toContain('/port');
  });

  it('treats set-but-empty variables as unset', () => {
    expect(
      configFromEnvironment({
        TETHER_HOST: '',
        TETHER_PORT: '',
        TETHER_DATA: '',
        DATABASE_URL: '',
        TETHER_PUBLIC_URL: '',
        TETHER_LOG_LEVEL: '',
        TETHER_KEK: '',
      }),
    ).toEqual({});
    expect(resolveConfig(configFromEnvironment({ TETHER_PORT: '', TETHER_KEK: '' })).port).toBe(8700);
  });

  it('ignores variables it does not own', () => {
    expect(configFromEnvironment({ PATH: '/usr/bin', TETHER_HOME: '/home/o/.tether', PORT: '1' })).toEqual(
      {},
    );
  });
});
