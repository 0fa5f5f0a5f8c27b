import { createHash, createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';
import type { Kek } from '../config/key-encryption.js';

/**
 * The audit keys one KEK gives: one MACs the records of every chain, the other authenticates
 * checkpoints. Each is derived with HKDF-SHA256 under its own label, so neither can stand in for
 * the other, nor for the KEK itself (which only seals secrets).
 */
export interface AuditKeys {
  /** Names the keys in the store (`audit_heads.mac_key`). Not secret: a hash of the chain key. */
  id: string;
  chain: KeyObject;
  checkpoint: KeyObject;
}

const CHAIN_LABEL = 'tether/audit-chain/hmac-sha256/v1';
const CHECKPOINT_LABEL = 'tether/audit-checkpoint/hmac-sha256/v1';
const SALT = 'tether audit';

function derive(kek: Kek, label: string): Buffer {
  return Buffer.from(hkdfSync('sha256', kek.key, SALT, label, 32));
}

/**
 * The process's audit keys, by id. Appending to a chain looks its key up by the id its head
 * names, so brokers on different stores and KEKs can share one process (as tests do), and a
 * chain whose key is not loaded here cannot be appended to (it fails closed, it is never
 * appended to unkeyed).
 */
const loaded = new Map<string, AuditKeys>();

/** Derives the audit keys of `kek` and makes them available to this process. */
export function loadAuditKeys(kek: Kek): AuditKeys {
  const chain = derive(kek, CHAIN_LABEL);
  const id = createHash('sha256').update(chain).digest('hex').slice(0, 16);
  const existing = loaded.get(id);
  if (existing) return existing;
  const keys: AuditKeys = {
    id,
    chain: createSecretKey(chain),
    checkpoint: createSecretKey(derive(kek, CHECKPOINT_LABEL)),
  };
  loaded.set(id, keys);
  return keys;
}

/** The loaded audit keys named `id`, if this process has them. */
export function auditKeysById(id: string): AuditKeys | undefined {
  return loaded.get(id);
}
