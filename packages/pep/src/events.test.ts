import { StatusList, TOKEN_STATUS } from '@tether-broker/protocol';
import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { RevocationFeedVerifier, RevocationMessageRefused } from './events.js';
import { type KeySource, localKeySource } from './jwks.js';

const ISSUER = 'https://broker.example';
const TENANT = 'ten_acme';
const NOW = Date.UTC(2026, 0, 5, 10, 0, 0);
const NOW_S = NOW / 1000;

interface Signer {
  kid: string;
  key: CryptoKey;
}

let broker: Signer;
let stranger: Signer;
let keys: KeySource;

async function signer(alg: 'Ed25519' | 'ES256'): Promise<Signer & { jwk: object }> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { kid, key: privateKey, jwk: { ...jwk, kid } };
}

let ecKey: Signer;

beforeAll(async () => {
  const b = await signer('Ed25519');
  const ec = await signer('ES256');
  broker = b;
  ecKey = ec;
  stranger = await signer('Ed25519');
  keys = await localKeySource({ keys: [b.jwk, ec.jwk] });
});

const sessionEnded = (sid = 'ses_1') => ({
  type: 'session_ended',
  data: { sid, reason: 'revoked', session_exp: NOW_S + 3600 },
});

async function event(
  seq: number,
  overrides: Record<string, unknown> = {},
  header: { typ?: string; kid?: string; alg?: string; key?: CryptoKey } = {},
): Promise<string> {
  return new SignJWT({ iss: ISSUER, tenant: TENANT, seq, iat: NOW_S - 1, ...sessionEnded(), ...overrides })
    .setProtectedHeader({
      alg: header.alg ?? 'EdDSA',
      typ: header.typ ?? 'tether-event+jwt',
      kid: header.kid ?? broker.kid,
    })
    .sign(header.key ?? broker.key);
}

async function heartbeat(seq: number, iat = NOW_S, overrides: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ iss: ISSUER, tenant: TENANT, seq, iat, ...overrides })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'tether-heartbeat+jwt', kid: broker.kid })
    .sign(broker.key);
}

function feed(options: { position?: number; now?: number; keySource?: KeySource } = {}) {
  return new RevocationFeedVerifier({
    keys: options.keySource ?? keys,
    issuer: ISSUER,
    tenant: TENANT,
    now: () => options.now ?? NOW,
    heartbeatMaxAgeMs: 10_000,
    ...(options.position === undefined ? {} : { position: options.position }),
  });
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RevocationMessageRefused) {
      expect(err.message).not.toMatch(/eyJ/); // never echoes the message
      return err.code;
    }
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('RevocationFeedVerifier: events', () => {
  it('accepts events in order and advances its position', async () => {
    const f = feed();
    expect(await f.verifyEvent(await event(1))).toEqual({
      seq: 1,
      issuedAt: (NOW_S - 1) * 1000,
      event: sessionEnded(),
    });
    expect(
      await f.verifyEvent(await event(2, { type: 'key_retired', data: { kid: 'old', extra: 'dropped' } })),
    ).toMatchObject({ seq: 2, event: { type: 'key_retired', data: { kid: 'old' } } });
    expect(
      (await f.verifyEvent(await event(3, { type: 'tenant_cutoff', data: { before: NOW_S } }))).event,
    ).toEqual({ type: 'tenant_cutoff', data: { before: NOW_S } });
    expect(f.position).toBe(3);
  });

  it('refuses a replayed event and reports a gap, leaving the position as it was', async () => {
    const f = feed({ position: 5 });
    expect(await refusal(f.verifyEvent(await event(5)))).toBe('replayed');
    expect(await refusal(f.verifyEvent(await event(2)))).toBe('replayed');
    expect(await refusal(f.verifyEvent(await event(7)))).toBe('gap');
    expect(f.position).toBe(5);
    expect((await f.verifyEvent(await event(6))).seq).toBe(6);
  });

  it.each([
    ['another tenant', () => event(1, { tenant: 'ten_globex' }), 'wrong_tenant'],
    ['another issuer', () => event(1, { iss: 'https://evil.example' }), 'wrong_issuer'],
    ['no issuer', () => event(1, { iss: undefined }), 'wrong_issuer'],
    ['a heartbeat typ', () => event(1, {}, { typ: 'tether-heartbeat+jwt' }), 'wrong_type'],
    ['an access-token typ', () => event(1, {}, { typ: 'at+jwt' }), 'wrong_type'],
    [
      'a key of another party under the broker kid',
      () => event(1, {}, { key: stranger.key }),
      'bad_signature',
    ],
    [
      'a key the broker does not have',
      () => event(1, {}, { key: stranger.key, kid: stranger.kid }),
      'unknown_key',
    ],
    ['ES256', () => event(1, {}, { alg: 'ES256', key: ecKey.key, kid: ecKey.kid }), 'wrong_algorithm'],
    ['an Ed25519 signature under the EC key id', () => event(1, {}, { kid: ecKey.kid }), 'wrong_algorithm'],
    ['an unknown event type', () => event(1, { type: 'privilege_narrowed', data: {} }), 'unsupported_event'],
    ['data that does not fit its type', () => event(1, { data: { sid: 'ses_1' } }), 'malformed'],
    ['no data', () => event(1, { data: undefined }), 'malformed'],
    ['seq 0', () => event(0), 'malformed'],
    ['a fractional seq', () => event(1.5), 'malformed'],
    ['a string seq', () => event('1' as unknown as number), 'malformed'],
    ['no iat', () => event(1, { iat: undefined }), 'malformed'],
    ['an iat in the future', () => event(1, { iat: NOW_S + 60 }), 'future'],
  ])('refuses an event with %s', async (_, make, code) => {
    const f = feed();
    expect(await refusal(f.verifyEvent(await make()))).toBe(code);
    expect(f.position).toBe(0);
  });

  it('refuses an altered payload and text that is no JWS', async () => {
    const genuine = await event(1);
    const [h, p, s] = genuine.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const altered = Buffer.from(
      JSON.stringify({ ...claims, data: { ...sessionEnded('ses_2').data } }),
    ).toString('base64url');
    expect(await refusal(feed().verifyEvent(`${h}.${altered}.${s}`))).toBe('bad_signature');
    for (const text of [
      '',
      'a.b',
      'a.b.c',
      `${h}.${p}`,
      `${h}.${p}.${s}.x`,
      `${h}.${'A'.repeat(20_000)}.${s}`,
      `${h}.${p}.${s} `,
    ]) {
      expect(await refusal(feed().verifyEvent(text))).toBe('malformed');
    }
    const notJson = Buffer.from('not json').toString('base64url');
    const unsignedHeader = Buffer.from(JSON.stringify({ alg: 'none', typ: 'tether-event+jwt' })).toString(
      'base64url',
    );
    expect(await refusal(feed().verifyEvent(`${unsignedHeader}.${p}.${s}`))).toBe('wrong_algorithm');
    expect(await refusal(feed().verifyEvent(`${notJson}.${p}.${s}`))).toBe('malformed');
  });

  it('fails closed when the broker keys are unavailable', async () => {
    const failing: KeySource = {
      getKey: async () => {
        throw new Error('JWKS unreachable');
      },
    };
    expect(await refusal(feed({ keySource: failing }).verifyEvent(await event(1)))).toBe('keys_unavailable');
  });
});

describe('RevocationFeedVerifier: heartbeats', () => {
  it('accepts a fresh heartbeat; caught up only when it holds every event up to its seq', async () => {
    const f = feed({ position: 3 });
    expect(await f.verifyHeartbeat(await heartbeat(3))).toEqual({ seq: 3, issuedAt: NOW, caughtUp: true });
    expect(await f.verifyHeartbeat(await heartbeat(5))).toEqual({ seq: 5, issuedAt: NOW, caughtUp: false });
  });

  it('refuses a heartbeat past its max age, or older than one already accepted', async () => {
    expect(await refusal(feed().verifyHeartbeat(await heartbeat(0, NOW_S - 11)))).toBe('stale');
    expect(await refusal(feed().verifyHeartbeat(await heartbeat(0, NOW_S + 60)))).toBe('future');
    const f = feed();
    const old = await heartbeat(0, NOW_S - 4);
    await f.verifyHeartbeat(await heartbeat(0, NOW_S - 2));
    expect(await refusal(f.verifyHeartbeat(old))).toBe('replayed');
    // Behind the events already applied, or behind the last heartbeat: a replay.
    const g = feed({ position: 4 });
    expect(await refusal(g.verifyHeartbeat(await heartbeat(3)))).toBe('replayed');
    await g.verifyHeartbeat(await heartbeat(6));
    expect(await refusal(g.verifyHeartbeat(await heartbeat(5)))).toBe('replayed');
  });

  it('refuses heartbeats of other tenants and events offered as heartbeats', async () => {
    expect(await refusal(feed().verifyHeartbeat(await heartbeat(0, NOW_S, { tenant: 'ten_globex' })))).toBe(
      'wrong_tenant',
    );
    expect(await refusal(feed().verifyHeartbeat(await event(1)))).toBe('wrong_type');
    expect(await refusal(feed().verifyHeartbeat(await heartbeat(-1)))).toBe('malformed');
  });
});

describe('RevocationFeedVerifier: configuration', () => {
  it('refuses a configuration it cannot enforce', () => {
    const base = { keys: {} as KeySource, issuer: ISSUER, tenant: TENANT, now: () => NOW };
    expect(() => new RevocationFeedVerifier({ ...base, issuer: '' })).toThrow(TypeError);
    expect(() => new RevocationFeedVerifier({ ...base, tenant: '' })).toThrow(TypeError);
    expect(() => new RevocationFeedVerifier({ ...base, heartbeatMaxAgeMs: 0 })).toThrow(TypeError);
    expect(() => new RevocationFeedVerifier({ ...base, position: -1 })).toThrow(TypeError);
    expect(() => new RevocationFeedVerifier({ ...base, clockToleranceSeconds: -1 })).toThrow(TypeError);
  });
});

describe('snapshots (resuming from a compacted position)', () => {
  async function snapshot(
    seq: number,
    overrides: Record<string, unknown> = {},
    header: { typ?: string; key?: CryptoKey; kid?: string } = {},
  ): Promise<string> {
    return new SignJWT({
      iss: ISSUER,
      tenant: TENANT,
      seq,
      iat: NOW_S - 1,
      ended: [{ sid: 'ses_9', reason: 'revoked', session_exp: NOW_S + 600 }],
      retired_kids: ['old-key'],
      ...overrides,
    })
      .setProtectedHeader({
        alg: 'EdDSA',
        typ: header.typ ?? 'tether-snapshot+jwt',
        kid: header.kid ?? broker.kid,
      })
      .sign(header.key ?? broker.key);
  }

  const refusal = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (err) {
      if (err instanceof RevocationMessageRefused) return err.code;
      throw err;
    }
    throw new Error('expected a refusal');
  };

  it('accepts a broker-signed snapshot ahead of the position and moves the position to it', async () => {
    const f = feed({ position: 3 });
    const s = await f.verifySnapshot(await snapshot(40));
    expect(s).toMatchObject({ seq: 40, retiredKids: ['old-key'] });
    expect(s.ended).toEqual([{ sid: 'ses_9', reason: 'revoked', session_exp: NOW_S + 600 }]);
    expect(f.position).toBe(40);
    // The next event must follow the snapshot.
    expect(await refusal(f.verifyEvent(await event(5)))).toBe('replayed');
    await expect(f.verifyEvent(await event(41))).resolves.toMatchObject({ seq: 41 });
  });

  it('refuses a snapshot behind the position (replayed), forged, for another tenant, or malformed — position unchanged', async () => {
    const f = feed({ position: 10 });
    expect(await refusal(f.verifySnapshot(await snapshot(9)))).toBe('replayed');
    expect(await refusal(f.verifySnapshot(await snapshot(20, {}, { key: stranger.key })))).toBe(
      'bad_signature',
    );
    expect(await refusal(f.verifySnapshot(await snapshot(20, {}, { typ: 'tether-event+jwt' })))).toBe(
      'wrong_type',
    );
    expect(await refusal(f.verifySnapshot(await snapshot(20, { tenant: 'ten_other' })))).toBe('wrong_tenant');
    expect(await refusal(f.verifySnapshot(await snapshot(20, { ended: 'all' })))).toBe('malformed');
    expect(await refusal(f.verifySnapshot(await snapshot(20, { ended: [{ sid: '' }] })))).toBe('malformed');
    expect(await refusal(f.verifySnapshot(await snapshot(20, { retired_kids: [7] })))).toBe('malformed');
    // An event offered as a snapshot is refused by its typ.
    expect(await refusal(f.verifySnapshot(await event(20)))).toBe('wrong_type');
    expect(f.position).toBe(10);
  });

  /** A status list of `size` entries with `flagged` INVALID, as a snapshot carries it. */
  function statusList(size: number, flagged: number[]) {
    const list = new StatusList(size, 1);
    for (const idx of flagged) list.set(idx, TOKEN_STATUS.INVALID);
    return list.encode();
  }
  const LIST_URI = `${ISSUER}/v1/status-lists/1`;

  it('carries ended sessions as status lists, narrowings and the cut-off, and reads them back', async () => {
    const f = feed({ position: 0 });
    const s = await f.verifySnapshot(
      await snapshot(5000, {
        status_before: NOW_S - 10,
        status_lists: [{ uri: LIST_URI, status_list: statusList(65_536, [7, 65_535]) }],
        narrowed: [{ sid: 'ses_3', before: NOW_S - 30, session_exp: NOW_S + 600 }],
        cutoff: NOW_S - 3600,
      }),
    );
    expect(s).toMatchObject({ seq: 5000, statusBefore: NOW_S - 10, cutoff: NOW_S - 3600 });
    expect(s.narrowed).toEqual([{ sid: 'ses_3', before: NOW_S - 30, session_exp: NOW_S + 600 }]);
    const list = s.statusLists.get(LIST_URI);
    expect([list?.get(7), list?.get(8), list?.get(65_535)]).toEqual([1, 0, 1]);
  });

  it('refuses a snapshot whose status lists were altered, are malformed, too large or repeated — position unchanged', async () => {
    const f = feed({ position: 10 });
    const good = await snapshot(20, {
      status_before: NOW_S - 10,
      status_lists: [{ uri: LIST_URI, status_list: statusList(1024, [3]) }],
    });
    // Clearing an INVALID bit in transit (to let an ended session through) breaks the signature.
    const [h, payload, sig] = good.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    claims.status_lists[0].status_list = statusList(1024, []);
    const altered = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`;
    expect(await refusal(f.verifySnapshot(altered))).toBe('bad_signature');
    const bad = async (status_lists: unknown, more: Record<string, unknown> = {}) =>
      refusal(f.verifySnapshot(await snapshot(20, { status_before: NOW_S, status_lists, ...more })));
    expect(await bad('all')).toBe('malformed');
    expect(await bad([{ uri: LIST_URI, status_list: { bits: 3, lst: 'eNoDAAAAAAE' } }])).toBe('malformed');
    expect(await bad([{ uri: LIST_URI, status_list: { bits: 1, lst: 'not base64url!' } }])).toBe('malformed');
    expect(await bad([{ status_list: statusList(8, []) }])).toBe('malformed');
    const one = { uri: LIST_URI, status_list: statusList(8, [1]) };
    expect(await bad([one, one])).toBe('malformed');
    // A list inflating past the limit (a decompression bomb) is refused, not inflated.
    expect(await bad([{ uri: LIST_URI, status_list: statusList(1 << 21, []) }])).toBe('malformed');
    expect(await bad([], { status_before: -1 })).toBe('malformed');
    expect(await bad([], { narrowed: [{ sid: 'ses_1' }] })).toBe('malformed');
    expect(await bad([], { cutoff: 'now' })).toBe('malformed');
    expect(f.position).toBe(10);
    await expect(f.verifySnapshot(good)).resolves.toMatchObject({ seq: 20 });
  });
});
