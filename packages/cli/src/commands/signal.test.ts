import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../errors.js';
import { transmitterBody } from './signal.js';

describe('signal transmitters add: the body sent', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tether-signal-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('names the issuer and one key source; the audience only when given', () => {
    expect(
      transmitterBody('okta', { issuer: 'https://acme.okta.com', jwksUri: 'https://acme.okta.com/keys' }),
    ).toEqual({
      name: 'okta',
      issuer: 'https://acme.okta.com',
      jwks_uri: 'https://acme.okta.com/keys',
    });
    const file = join(dir, 'keys.json');
    writeFileSync(file, JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: 'abc' }));
    expect(
      transmitterBody('edge', {
        issuer: 'https://edge.example',
        audience: 'https://broker/x',
        jwksFile: file,
      }),
    ).toEqual({
      name: 'edge',
      issuer: 'https://edge.example',
      audience: 'https://broker/x',
      jwks: { keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'abc' }] },
    });
  });

  it('refuses none or both key sources, and a private key file, before anything is sent', () => {
    expect(() => transmitterBody('x', { issuer: 'https://x' })).toThrow(CliError);
    expect(() =>
      transmitterBody('x', { issuer: 'https://x', jwksUri: 'https://x/k', jwksFile: 'f' }),
    ).toThrow(CliError);
    const secret = join(dir, 'private.json');
    writeFileSync(secret, JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: 'abc', d: 'secret' }));
    expect(() => transmitterBody('x', { issuer: 'https://x', jwksFile: secret })).toThrow(
      /private or secret/,
    );
  });
});
