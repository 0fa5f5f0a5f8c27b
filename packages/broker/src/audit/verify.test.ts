import { createSecretKey, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type AuditEntry, type AuditRecord, chainNext, GENESIS_HASH, macRecord } from './chain.js';
import { type ChainFault, type ChainTrust, type ChainVerification, ChainVerifier } from './verify.js';

/** The chain key (derived from the KEK in the broker). */
const KEY = createSecretKey(randomBytes(32));
/** A key someone without the KEK might try. */
const WRONG_KEY = createSecretKey(randomBytes(32));
const TRUST: ChainTrust = { key: KEY, unkeyedUntil: 0, checkpoints: [] };

const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
const N = 8;

type Head = { seq: number; hash: string };

const ENTRIES: AuditEntry[] = [
  {
    actor: 'operator',
    action: 'tenant.created',
    target: 'ten_a',
    outcome: 'success',
    details: { name: 'a' },
  },
  { actor: 'operator', action: 'principal.created', target: 'prn_admin', outcome: 'success' },
  { actor: 'prn_admin', action: 'auth.token_issued', target: 'prn_admin', outcome: 'success' },
  { actor: 'prn_admin', action: 'privilege.created', target: 'prv_fw', outcome: 'success' },
  {
    actor: 'prn_olivia',
    action: 'request.created',
    target: 'req_1',
    outcome: 'success',
    requestId: 'req_1',
    ticket: 'NET-42',
    principalId: 'prn_olivia',
    policies: ['operators-request'],
    details: { privilege: 'firewall-admin', duration_s: 1800 },
  },
  {
    actor: 'prn_approver',
    action: 'request.review.approve',
    target: 'req_1',
    outcome: 'refused',
    requestId: 'req_1',
    details: { code: 'approver_not_eligible' },
  },
  {
    actor: 'prn_approver2',
    action: 'request.review.approve',
    target: 'req_1',
    outcome: 'success',
    requestId: 'req_1',
    ticket: 'NET-42',
    policies: ['approvers-approve'],
  },
  {
    actor: 'prn_approver2',
    action: 'request.approved',
    target: 'req_1',
    outcome: 'success',
    requestId: 'req_1',
  },
];

/** A chain as the broker writes it, ids sortable like the store sorts them (seq, then id). */
function buildChain(): { records: AuditRecord[]; head: Head } {
  let head: Head = { seq: 0, hash: GENESIS_HASH };
  const records: AuditRecord[] = [];
  for (let i = 0; i < N; i++) {
    const r = chainNext(
      head,
      {
        tenantId: 'ten_a',
        id: `aud_${String(i + 1).padStart(2, '0')}`,
        at: T0 + i * 1000,
        entry: ENTRIES[i]!,
      },
      KEY,
    );
    records.push(r);
    head = { seq: r.seq, hash: r.hash };
  }
  return { records, head };
}

/** Reads the chain the way the store does (ordered by seq, then id) and feeds it in pages. */
function verify(
  records: AuditRecord[],
  head: Head | undefined,
  pageSize = 1000,
  trust: ChainTrust = TRUST,
): ChainVerification {
  const ordered = [...records].sort((a, b) => a.seq - b.seq || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const verifier = new ChainVerifier(head, trust);
  for (let offset = 0; offset < ordered.length; offset += pageSize) {
    if (!verifier.feed(ordered.slice(offset, offset + pageSize))) break;
  }
  return verifier.finish();
}

/** Recomputes a record's MAC with the real key: what only a holder of the KEK could do. */
const rehash = (r: AuditRecord): AuditRecord => {
  const { hash, ...unsigned } = r;
  void hash;
  return { ...r, hash: macRecord(unsigned, KEY) };
};
const at = (records: AuditRecord[], seq: number) => records.find((r) => r.seq === seq)!;

interface Case {
  name: string;
  tamper(chain: { records: AuditRecord[]; head: Head }): { records: AuditRecord[]; head: Head | undefined };
  expected: { seq: number; id: string; fault: ChainFault; checked: number };
}

const CASES: Case[] = [
  {
    name: 'a field of a middle record edited (outcome)',
    tamper: ({ records, head }) => ({
      records: records.map((r) => (r.seq === 4 ? { ...r, outcome: 'refused' } : r)),
      head,
    }),
    expected: { seq: 4, id: 'aud_04', fault: 'edited', checked: 3 },
  },
  {
    name: 'the details of the first record edited',
    tamper: ({ records, head }) => ({
      records: records.map((r) => (r.seq === 1 ? { ...r, details: { name: 'b' } } : r)),
      head,
    }),
    expected: { seq: 1, id: 'aud_01', fault: 'edited', checked: 0 },
  },
  {
    name: 'a stored hash overwritten',
    tamper: ({ records, head }) => ({
      records: records.map((r) => (r.seq === 6 ? { ...r, hash: 'f'.repeat(64) } : r)),
      head,
    }),
    expected: { seq: 6, id: 'aud_06', fault: 'edited', checked: 5 },
  },
  {
    name: 'a middle record edited and its own hash recomputed: the next link breaks',
    tamper: ({ records, head }) => ({
      records: records.map((r) => (r.seq === 4 ? rehash({ ...r, actor: 'prn_someone_else' }) : r)),
      head,
    }),
    expected: { seq: 5, id: 'aud_05', fault: 'broken_link', checked: 4 },
  },
  {
    name: 'a record edited and every later record rehashed and relinked: the head does not match',
    tamper: ({ records, head }) => {
      let prev = at(records, 2);
      const rewritten = records.map((r) => {
        if (r.seq < 3) return r;
        const next = rehash({ ...r, prevHash: prev.hash, ...(r.seq === 3 ? { outcome: 'failure' } : {}) });
        prev = next;
        return next;
      });
      return { records: rewritten, head };
    },
    expected: { seq: N, id: 'aud_08', fault: 'broken_link', checked: N },
  },
  {
    name: 'a middle record deleted',
    tamper: ({ records, head }) => ({ records: records.filter((r) => r.seq !== 4), head }),
    expected: { seq: 5, id: 'aud_05', fault: 'sequence_gap', checked: 3 },
  },
  {
    name: 'the first record deleted',
    tamper: ({ records, head }) => ({ records: records.filter((r) => r.seq !== 1), head }),
    expected: { seq: 2, id: 'aud_02', fault: 'sequence_gap', checked: 0 },
  },
  {
    name: 'a middle record deleted and the later ones renumbered',
    tamper: ({ records, head }) => ({
      records: records.filter((r) => r.seq !== 4).map((r) => (r.seq > 4 ? { ...r, seq: r.seq - 1 } : r)),
      head,
    }),
    expected: { seq: 4, id: 'aud_05', fault: 'edited', checked: 3 },
  },
  {
    name: 'the last record deleted',
    tamper: ({ records, head }) => ({ records: records.filter((r) => r.seq !== N), head }),
    expected: { seq: N, id: '', fault: 'truncated', checked: N - 1 },
  },
  {
    name: 'the last three records deleted',
    tamper: ({ records, head }) => ({ records: records.filter((r) => r.seq <= N - 3), head }),
    expected: { seq: N - 2, id: '', fault: 'truncated', checked: N - 3 },
  },
  {
    name: 'every record deleted',
    tamper: ({ head }) => ({ records: [], head }),
    expected: { seq: 1, id: '', fault: 'truncated', checked: 0 },
  },
  {
    name: 'the head deleted along with the last record',
    tamper: ({ records }) => ({ records: records.filter((r) => r.seq !== N), head: undefined }),
    expected: { seq: N, id: '', fault: 'truncated', checked: N - 1 },
  },
  {
    name: 'a forged record with a duplicate seq, correctly hashed and linked',
    tamper: ({ records, head }) => {
      const forged = chainNext(
        { seq: 3, hash: at(records, 3).hash },
        {
          tenantId: 'ten_a',
          id: 'aud_04x',
          at: T0 + 3500,
          entry: { actor: 'prn_mallory', action: 'request.approved', target: 'req_9', outcome: 'success' },
        },
        KEY,
      );
      return { records: [...records, forged], head };
    },
    expected: { seq: 4, id: 'aud_04x', fault: 'sequence_duplicate', checked: 4 },
  },
  {
    name: 'a forged record with a duplicate seq that sorts before the real one',
    tamper: ({ records, head }) => ({
      records: [...records, { ...at(records, 4), id: 'aud_03x', actor: 'prn_mallory' }],
      head,
    }),
    expected: { seq: 4, id: 'aud_03x', fault: 'edited', checked: 3 },
  },
  {
    name: 'a record appended at the end without moving the head',
    tamper: ({ records, head }) => {
      const forged = chainNext(
        head,
        {
          tenantId: 'ten_a',
          id: 'aud_09',
          at: T0 + 9000,
          entry: { actor: 'prn_mallory', action: 'request.approved', target: 'req_9', outcome: 'success' },
        },
        KEY,
      );
      return { records: [...records, forged], head };
    },
    expected: { seq: N + 1, id: 'aud_09', fault: 'broken_link', checked: N },
  },
  {
    name: 'two records swapped (their seq values exchanged)',
    tamper: ({ records, head }) => ({
      records: records.map((r) => (r.seq === 3 ? { ...r, seq: 6 } : r.seq === 6 ? { ...r, seq: 3 } : r)),
      head,
    }),
    expected: { seq: 3, id: 'aud_06', fault: 'edited', checked: 2 },
  },
  {
    name: 'two adjacent records swapped and both rehashed with their new seq',
    tamper: ({ records, head }) => ({
      records: records.map((r) =>
        r.seq === 5 ? rehash({ ...r, seq: 6 }) : r.seq === 6 ? rehash({ ...r, seq: 5 }) : r,
      ),
      head,
    }),
    expected: { seq: 5, id: 'aud_06', fault: 'broken_link', checked: 4 },
  },
  {
    name: 'the last record edited and rehashed: it no longer matches the head',
    tamper: ({ records, head }) => ({
      records: records.map((r) => (r.seq === N ? rehash({ ...r, outcome: 'refused' }) : r)),
      head,
    }),
    expected: { seq: N, id: 'aud_08', fault: 'broken_link', checked: N },
  },
];

describe('ChainVerifier', () => {
  it('accepts an untouched chain and counts every record', () => {
    const { records, head } = buildChain();
    expect(verify(records, head)).toEqual({ ok: true, checked: N });
  });

  it('accepts an empty chain whose head is still at genesis', () => {
    expect(verify([], { seq: 0, hash: GENESIS_HASH })).toEqual({ ok: true, checked: 0 });
  });

  describe.each([1, 3, 1000])('fed in pages of %i', (pageSize) => {
    it('accepts the untouched chain', () => {
      const { records, head } = buildChain();
      expect(verify(records, head, pageSize)).toEqual({ ok: true, checked: N });
    });

    it.each(CASES)('finds $name', ({ tamper, expected }) => {
      const tampered = tamper(buildChain());
      const result = verify(tampered.records, tampered.head, pageSize);
      expect(result).toEqual({
        ok: false,
        checked: expected.checked,
        firstBad: { seq: expected.seq, id: expected.id, fault: expected.fault, message: expect.any(String) },
      });
    });
  });

  it('says what is wrong in its message', () => {
    const { records, head } = buildChain();
    const gap = verify(
      records.filter((r) => r.seq !== 4 && r.seq !== 5),
      head,
    );
    expect(gap.firstBad?.message).toBe('records 4..5 are missing before record 6');
    const truncated = verify(
      records.filter((r) => r.seq <= 5),
      head,
    );
    expect(truncated.firstBad?.message).toBe('records 6..8 are missing at the end of the chain');
  });

  it('stops at the first fault: later records are neither checked nor counted', () => {
    const { records, head } = buildChain();
    const verifier = new ChainVerifier(head, TRUST);
    const edited = records.map((r) => (r.seq === 2 || r.seq === 6 ? { ...r, target: 'x' } : r));
    expect(verifier.feed(edited.slice(0, 4))).toBe(false);
    expect(verifier.feed(edited.slice(4))).toBe(false);
    expect(verifier.finish()).toMatchObject({ ok: false, checked: 1, firstBad: { seq: 2, fault: 'edited' } });
  });

  it('reports every single-field edit as an edit of that record', () => {
    const fields: [keyof AuditRecord, unknown][] = [
      ['tenantId', 'ten_b'],
      ['id', 'aud_99'],
      ['at', T0 - 1],
      ['actor', 'prn_x'],
      ['action', 'request.denied'],
      ['target', 'req_x'],
      ['outcome', 'failure'],
      ['requestId', 'req_x'],
      ['ticket', 'NET-1'],
      ['principalId', 'prn_x'],
      ['policies', ['p']],
      ['details', { injected: true }],
      ['prevHash', '1'.repeat(64)],
    ];
    for (const [field, value] of fields) {
      const { records, head } = buildChain();
      const tampered = records.map((r) => (r.seq === 5 ? { ...r, [field]: value } : r));
      const result = verify(tampered, head);
      expect(result.firstBad, field).toMatchObject({ seq: 5, fault: 'edited' });
    }
  });
});

/** Rewrites the chain from record `from` on: edits it, then recomputes every later hash and link. */
function rewriteFrom(records: AuditRecord[], from: number, key: typeof KEY | undefined): AuditRecord[] {
  let prev: Head = from === 1 ? { seq: 0, hash: GENESIS_HASH } : at(records, from - 1);
  return records.map((r) => {
    if (r.seq < from) return r;
    const entry: AuditEntry = {
      actor: r.actor,
      action: r.action,
      target: r.target,
      outcome: r.seq === from ? 'refused' : (r.outcome as AuditEntry['outcome']),
      requestId: r.requestId,
      ticket: r.ticket,
      principalId: r.principalId,
      policies: r.policies,
      details: r.details,
    };
    const next = chainNext(prev, { tenantId: r.tenantId, id: r.id, at: r.at, entry }, key);
    prev = next;
    return next;
  });
}

describe('ChainVerifier on a keyed chain, against a writer without the key', () => {
  it('finds a record rewritten with the old unkeyed algorithm, every later hash and the head recomputed', () => {
    const { records } = buildChain();
    const forged = rewriteFrom(records, 4, undefined);
    const newHead = { seq: N, hash: forged.at(-1)!.hash };
    expect(verify(forged, newHead)).toMatchObject({
      ok: false,
      checked: 3,
      firstBad: { seq: 4, id: 'aud_04', fault: 'unkeyed' },
    });
  });

  it('finds unkeyed records relabelled as keyed (hash recomputed, version left at 1)', () => {
    const { records } = buildChain();
    const forged = rewriteFrom(records, 4, undefined).map((r) => ({ ...r, macVersion: 1 }));
    expect(verify(forged, { seq: N, hash: forged.at(-1)!.hash })).toMatchObject({
      ok: false,
      checked: 3,
      firstBad: { seq: 4, fault: 'edited' },
    });
  });

  it('finds a record rewritten and every later MAC recomputed under a wrong key', () => {
    const { records } = buildChain();
    const forged = rewriteFrom(records, 2, WRONG_KEY);
    expect(verify(forged, { seq: N, hash: forged.at(-1)!.hash })).toMatchObject({
      ok: false,
      checked: 1,
      firstBad: { seq: 2, id: 'aud_02', fault: 'edited' },
    });
  });

  it('accepts an intact chain with its checkpoints', () => {
    const { records, head } = buildChain();
    const trust = { ...TRUST, checkpoints: [at(records, 3), at(records, N)] };
    expect(verify(records, head, 1000, trust)).toEqual({ ok: true, checked: N });
  });

  it('finds the tail deleted and the head moved back, when a checkpoint saw the tail', () => {
    const { records } = buildChain();
    const kept = records.filter((r) => r.seq <= 5);
    const trust = { ...TRUST, checkpoints: [at(records, 6)] };
    expect(verify(kept, at(kept, 5), 1000, trust)).toMatchObject({
      ok: false,
      checked: 5,
      firstBad: {
        seq: 6,
        fault: 'truncated',
        message: 'records 6..6 are missing at the end of the chain (a checkpoint saw record 6)',
      },
    });
  });

  it('cannot see the tail deleted after the last checkpoint (the documented limit)', () => {
    const { records } = buildChain();
    const kept = records.filter((r) => r.seq <= 6);
    const trust = { ...TRUST, checkpoints: [at(records, 5)] };
    expect(verify(kept, at(kept, 6), 1000, trust)).toEqual({ ok: true, checked: 6 });
  });
});

describe('ChainVerifier on a chain keyed after an unkeyed prefix', () => {
  /** Three records written before the chain was keyed, sealed by a checkpoint, then keyed ones. */
  function upgraded(): { records: AuditRecord[]; head: Head; trust: ChainTrust } {
    let head: Head = { seq: 0, hash: GENESIS_HASH };
    const records: AuditRecord[] = [];
    for (let i = 0; i < N; i++) {
      const r = chainNext(
        head,
        { tenantId: 'ten_a', id: `aud_${String(i + 1).padStart(2, '0')}`, at: T0 + i, entry: ENTRIES[i]! },
        i < 3 ? undefined : KEY,
      );
      records.push(r);
      head = r;
    }
    return { records, head, trust: { key: KEY, unkeyedUntil: 3, checkpoints: [at(records, 3)] } };
  }

  it('accepts the sealed unkeyed prefix and the keyed rest', () => {
    const { records, head, trust } = upgraded();
    expect(records.map((r) => r.macVersion)).toEqual([0, 0, 0, 1, 1, 1, 1, 1]);
    expect(verify(records, head, 1000, trust)).toEqual({ ok: true, checked: N });
  });

  it('finds the unkeyed prefix rewritten and rehashed: the seal no longer matches', () => {
    const { records, trust } = upgraded();
    const forged = [...rewriteFrom(records.slice(0, 3), 2, undefined), ...records.slice(3)];
    expect(verify(forged, upgraded().head, 1000, trust)).toMatchObject({
      ok: false,
      checked: 2,
      firstBad: { seq: 3, fault: 'checkpoint_mismatch' },
    });
  });

  it('refuses unkeyed records past the seal', () => {
    const { records, trust } = upgraded();
    const forged = rewriteFrom(records, 5, undefined);
    expect(verify(forged, { seq: N, hash: forged.at(-1)!.hash }, 1000, trust)).toMatchObject({
      ok: false,
      checked: 4,
      firstBad: { seq: 5, fault: 'unkeyed' },
    });
  });

  it('refuses a wholly unkeyed chain that no seal covers', () => {
    const { records } = upgraded();
    const forged = rewriteFrom(records, 1, undefined);
    expect(verify(forged, { seq: N, hash: forged.at(-1)!.hash })).toMatchObject({
      ok: false,
      checked: 0,
      firstBad: { seq: 1, fault: 'unkeyed' },
    });
  });
});
