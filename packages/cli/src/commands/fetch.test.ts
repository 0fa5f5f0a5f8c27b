import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import type { StoredSession } from '../session-store.js';
import { audienceMatch, chooseSession, collectHeader, parseHeader, requestInit } from './fetch.js';

describe('fetch -H parsing', () => {
  it('splits at the first colon and trims; the value may hold colons or be empty', () => {
    expect(parseHeader('Accept: application/json')).toEqual(['Accept', 'application/json']);
    expect(parseHeader('X-When:  10:30:00  ')).toEqual(['X-When', '10:30:00']);
    expect(parseHeader('X-Empty:')).toEqual(['X-Empty', '']);
  });

  it.each(['no colon', ': value', 'Bad Name: v', 'Bad(Name): v'])('refuses %j', (text) => {
    expect(() => parseHeader(text)).toThrow(InvalidArgumentError);
  });

  it('refuses a value that would smuggle a second header', () => {
    expect(() => parseHeader('X-A: 1\r\nAuthorization: DPoP stolen')).toThrow(/line break/);
  });

  it.each(['Authorization: DPoP x', 'authorization: Bearer x', 'DPoP: proof'])(
    'refuses %j: the session sets it',
    (text) => {
      expect(() => parseHeader(text)).toThrow(/set by the session/);
    },
  );

  it('collects repeated headers in order, a name given twice included', () => {
    const headers = ['Accept: a', 'X-Trace: 1', 'Accept: b'].reduce<[string, string][] | undefined>(
      (all, h) => collectHeader(h, all),
      undefined,
    );
    expect(headers).toEqual([
      ['Accept', 'a'],
      ['X-Trace', '1'],
      ['Accept', 'b'],
    ]);
  });
});

describe('fetch request building, as curl does', () => {
  it('never follows a redirect: the token and its proof are for the URL given only', () => {
    expect(requestInit({}).redirect).toBe('manual');
  });

  it('is a GET without a body, a POST with one', () => {
    expect(requestInit({}).method).toBe('GET');
    expect(requestInit({ data: 'x' }).method).toBe('POST');
    expect(requestInit({ request: 'put', data: 'x' }).method).toBe('PUT');
  });

  it('labels a JSON body as JSON, other text as text, unless a Content-Type is given', () => {
    const json = requestInit({ data: '{"rule": "allow 443"}' });
    expect(new Headers(json.headers).get('content-type')).toBe('application/json');
    const text = requestInit({ data: 'allow 443' });
    expect(new Headers(text.headers).get('content-type')).toBe('text/plain; charset=utf-8');
    const given = requestInit({ data: '{}', header: [['Content-Type', 'application/merge-patch+json']] });
    expect(new Headers(given.headers).get('content-type')).toBe('application/merge-patch+json');
  });

  it('reads the body from a file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-fetch-'));
    try {
      writeFileSync(join(dir, 'body.bin'), Buffer.from([0, 1, 2]));
      const init = requestInit({ dataFile: join(dir, 'body.bin') });
      expect(Buffer.from(init.body as Uint8Array)).toEqual(Buffer.from([0, 1, 2]));
      expect(new Headers(init.headers).get('content-type')).toBe('application/octet-stream');
      expect(() => requestInit({ dataFile: join(dir, 'missing') })).toThrow(/cannot read/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses -d with --data-file, a body on GET, and a method that is not one', () => {
    expect(() => requestInit({ data: 'a', dataFile: 'b' })).toThrow(/not both/);
    expect(() => requestInit({ request: 'GET', data: 'a' })).toThrow(/cannot carry a body/);
    expect(() => requestInit({ request: 'GET /evil' })).toThrow(/not an HTTP method/);
  });
});

const stored = (session: string, audiences: string[]): StoredSession => ({
  broker: 'http://127.0.0.1:8700',
  tenant: 'ten_1',
  principal: 'prn_1',
  session,
  request: 'req_1',
  privilege: 'prv_1',
  audiences,
  hard_expires_at: new Date(Date.now() + 3_600_000).toISOString(),
  key: { d: 'x' },
  access_token: 'at',
  refresh_token: 'rt',
  expires_at: new Date(Date.now() + 300_000).toISOString(),
});

describe('which session a URL is called with', () => {
  const fw = stored('ses_fw', ['http://127.0.0.1:8701']);
  const fw2 = stored('ses_fw2', ['http://127.0.0.1:8701', 'https://fw.example']);
  const db = stored('ses_db', ['https://db.example']);
  const urn = stored('ses_urn', ['urn:acme:firewall']);
  const at = (u: string) => new URL(u);

  it('matches audiences by origin: scheme, host and port', () => {
    expect(audienceMatch(at('http://127.0.0.1:8701/rules?x=1'), fw.audiences)).toBe('match');
    expect(audienceMatch(at('https://127.0.0.1:8701/rules'), fw.audiences)).toBe('mismatch');
    expect(audienceMatch(at('http://127.0.0.1:8702/'), fw.audiences)).toBe('mismatch');
    expect(audienceMatch(at('http://127.0.0.1.evil.example:8701/'), fw.audiences)).toBe('mismatch');
    expect(audienceMatch(at('https://anything.example/'), urn.audiences)).toBe('unknown');
  });

  it('picks the one session whose audiences hold the origin, whatever is current', () => {
    expect(chooseSession([fw, db], at('https://db.example/q'), { current: 'ses_fw' }).session).toBe('ses_db');
  });

  it('of several for the origin, picks the current one, else refuses to guess', () => {
    const url = at('http://127.0.0.1:8701/rules');
    expect(chooseSession([fw, fw2], url, { current: 'ses_fw2' }).session).toBe('ses_fw2');
    expect(() => chooseSession([fw, fw2], url, { current: 'ses_db' })).toThrow(
      expect.objectContaining({ code: 'ambiguous_session' }),
    );
  });

  it('never sends a token to an origin that none of its audiences names', () => {
    expect(() => chooseSession([fw, db], at('https://attacker.example/'), { current: 'ses_fw' })).toThrow(
      expect.objectContaining({ code: 'no_session' }),
    );
    expect(() =>
      chooseSession([fw], at('https://attacker.example/'), { explicit: 'ses_fw', current: 'ses_fw' }),
    ).toThrow(expect.objectContaining({ code: 'audience_mismatch' }));
  });

  it('uses the current session for any origin only when its audiences are not URLs', () => {
    expect(chooseSession([urn], at('https://fw.internal/'), { current: 'ses_urn' }).session).toBe('ses_urn');
    expect(() => chooseSession([urn], at('https://fw.internal/'), {})).toThrow(
      expect.objectContaining({ code: 'no_session' }),
    );
  });

  it('answers no_session when there is none, or the one named is not held here', () => {
    expect(() => chooseSession([], at('http://127.0.0.1:8701/'), {})).toThrow(
      expect.objectContaining({ code: 'no_session' }),
    );
    expect(() => chooseSession([fw], at('http://127.0.0.1:8701/'), { explicit: 'ses_db' })).toThrow(
      expect.objectContaining({ code: 'no_session' }),
    );
  });
});
