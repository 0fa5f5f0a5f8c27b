import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { auditKeysById, loadAuditKeys } from './keys.js';

const kekOf = (bytes: Buffer) => ({ key: new Uint8Array(bytes), id: 'k' });
const mac = (key: Parameters<typeof createHmac>[1]) => createHmac('sha256', key).update('x').digest('hex');

describe('audit keys', () => {
  it('derives the same keys from the same KEK, and makes them available by id', () => {
    const bytes = randomBytes(32);
    const a = loadAuditKeys(kekOf(bytes));
    const b = loadAuditKeys(kekOf(Buffer.from(bytes)));
    expect(b.id).toBe(a.id);
    expect(mac(b.chain)).toBe(mac(a.chain));
    expect(auditKeysById(a.id)).toBe(a);
  });

  it('derives a chain key, a checkpoint key and the KEK that are three different keys', () => {
    const bytes = randomBytes(32);
    const keys = loadAuditKeys(kekOf(bytes));
    const macs = new Set([mac(keys.chain), mac(keys.checkpoint), mac(bytes)]);
    expect(macs.size).toBe(3);
    expect(keys.id).toMatch(/^[0-9a-f]{16}$/);
  });

  it('derives other keys from another KEK; an unknown id names no key', () => {
    const a = loadAuditKeys(kekOf(randomBytes(32)));
    const b = loadAuditKeys(kekOf(randomBytes(32)));
    expect(b.id).not.toBe(a.id);
    expect(mac(b.chain)).not.toBe(mac(a.chain));
    expect(auditKeysById('0000000000000000')).toBeUndefined();
  });
});
