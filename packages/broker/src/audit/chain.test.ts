import { createSecretKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type AuditEntry,
  type AuditRecord,
  chainNext,
  GENESIS_HASH,
  hashRecord,
  macRecord,
} from './chain.js';

const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);

const ENTRY: AuditEntry = {
  actor: 'prn_approver',
  action: 'request.review.approve',
  target: 'req_1',
  outcome: 'success',
  requestId: 'req_1',
  ticket: 'NET-42',
  principalId: 'prn_requester',
  policies: ['approvers-approve'],
  details: { comment: 'ok', nested: { a: 1, b: [1, 2] } },
};

function first(entry: AuditEntry = ENTRY): AuditRecord {
  return chainNext({ seq: 0, hash: GENESIS_HASH }, { tenantId: 'ten_a', id: 'aud_1', at: T0, entry });
}

const unsigned = (r: AuditRecord): Omit<AuditRecord, 'hash'> => {
  const { hash, ...rest } = r;
  void hash;
  return rest;
};

describe('chainNext', () => {
  it('starts a chain at seq 1, linked to the genesis hash, with a hash over its own fields', () => {
    const r = first();
    expect(GENESIS_HASH).toBe('0'.repeat(64));
    expect(r.seq).toBe(1);
    expect(r.prevHash).toBe(GENESIS_HASH);
    expect(r.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(r.hash).toBe(hashRecord(unsigned(r)));
  });

  it('links each record to the one before it and numbers them without gaps', () => {
    let head = { seq: 0, hash: GENESIS_HASH };
    const chain: AuditRecord[] = [];
    for (let i = 1; i <= 5; i++) {
      const r = chainNext(head, { tenantId: 'ten_a', id: `aud_${i}`, at: T0 + i, entry: ENTRY });
      chain.push(r);
      head = r;
    }
    expect(chain.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    for (let i = 1; i < chain.length; i++) expect(chain[i]!.prevHash).toBe(chain[i - 1]!.hash);
    expect(new Set(chain.map((r) => r.hash)).size).toBe(5);
  });

  it('is deterministic: the same input gives the same hash', () => {
    expect(first().hash).toBe(first().hash);
  });

  it('stores absent optional fields as null, [] and {}', () => {
    const r = first({ actor: 'operator', action: 'tenant.created', target: 'ten_a', outcome: 'success' });
    expect(r).toMatchObject({ requestId: null, ticket: null, principalId: null, policies: [], details: {} });
    const explicit = first({
      actor: 'operator',
      action: 'tenant.created',
      target: 'ten_a',
      outcome: 'success',
      requestId: null,
      ticket: null,
      principalId: null,
      policies: [],
      details: {},
    });
    expect(explicit.hash).toBe(r.hash);
  });
});

describe('hashRecord', () => {
  const base = unsigned(first());

  // Every field is covered by the hash: changing any one of them, alone, changes it.
  const mutations: [keyof typeof base, unknown][] = [
    ['tenantId', 'ten_b'],
    ['seq', 2],
    ['id', 'aud_2'],
    ['at', T0 + 1],
    ['actor', 'prn_other'],
    ['action', 'request.review.deny'],
    ['target', 'req_2'],
    ['outcome', 'refused'],
    ['requestId', 'req_2'],
    ['requestId', null],
    ['ticket', 'NET-43'],
    ['ticket', null],
    ['principalId', 'prn_other'],
    ['principalId', null],
    ['policies', []],
    ['policies', ['approvers-approve', 'extra']],
    ['details', {}],
    ['details', { comment: 'ok!', nested: { a: 1, b: [1, 2] } }],
    ['details', { comment: 'ok', nested: { a: 1, b: [2, 1] } }],
    ['details', { comment: 'ok', nested: { a: '1', b: [1, 2] } }],
    ['details', { comment: 'ok', nested: { a: 1, b: [1, 2] }, extra: null }],
    ['prevHash', 'f'.repeat(64)],
  ];

  it.each(mutations)('changes when %s changes (to %j)', (field, value) => {
    const changed = { ...base, [field]: value };
    expect(hashRecord(changed)).not.toBe(hashRecord(base));
  });

  it('does not depend on the order of keys in details (RFC 8785 canonical JSON)', () => {
    const a = { ...base, details: { z: 1, a: { y: [1, { q: 1, p: 2 }], x: 'x' }, m: null } };
    const b = { ...base, details: { m: null, a: { x: 'x', y: [1, { p: 2, q: 1 }] }, z: 1 } };
    expect(hashRecord(a)).toBe(hashRecord(b));
  });

  it('does not depend on the order in which the record object lists its fields', () => {
    const reversed = Object.fromEntries(Object.entries(base).reverse()) as typeof base;
    expect(hashRecord(reversed)).toBe(hashRecord(base));
  });

  it('depends on the order of policies (an array, not a set)', () => {
    const a = { ...base, policies: ['p1', 'p2'] };
    const b = { ...base, policies: ['p2', 'p1'] };
    expect(hashRecord(a)).not.toBe(hashRecord(b));
  });

  it('survives the JSON round trip through the store (undefined members are dropped on both sides)', () => {
    const written = { ...base, details: { changes: { enabled: undefined, roles: ['admin'] }, list: [1] } };
    const readBack = { ...base, details: JSON.parse(JSON.stringify(written.details)) };
    expect(hashRecord(readBack)).toBe(hashRecord(written));
  });

  it('cannot be fooled by moving text between fields', () => {
    // A naive concatenation would hash "ab"+"c" like "a"+"bc".
    const a = { ...base, actor: 'ab', action: 'c' };
    const b = { ...base, actor: 'a', action: 'bc' };
    expect(hashRecord(a)).not.toBe(hashRecord(b));
  });
});

describe('macRecord (keyed chains)', () => {
  const key = createSecretKey(Buffer.alloc(32, 7));
  const otherKey = createSecretKey(Buffer.alloc(32, 8));
  const keyed = () =>
    chainNext({ seq: 0, hash: GENESIS_HASH }, { tenantId: 'ten_a', id: 'aud_1', at: T0, entry: ENTRY }, key);

  it('MACs a keyed record under the key, and labels it version 1', () => {
    const r = keyed();
    expect(r.macVersion).toBe(1);
    expect(r.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(r.hash).toBe(macRecord(unsigned(r), key));
  });

  it('cannot be recomputed without the key: neither the unkeyed hash nor another key gives it', () => {
    const r = keyed();
    expect(r.hash).not.toBe(hashRecord(unsigned(r)));
    expect(r.hash).not.toBe(macRecord(unsigned(r), otherKey));
  });

  it('labels records chained without a key version 0, with the unkeyed hash', () => {
    expect(first().macVersion).toBe(0);
  });
});
