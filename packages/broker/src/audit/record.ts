import type { KeyObject } from 'node:crypto';
import { newId } from '../domain/ids.js';
import type { StoreHandle, TxHandle } from '../store/database.js';
import {
  type AuditHead,
  appendAuditRecord,
  appendAuditRecords,
  insertAuditHeadRow,
  listAuditHeads,
  lockAuditHead,
  readStoreAuditKeyId,
} from '../store/repositories/audit.js';
import { type AuditEntry, type AuditRecord, chainNext } from './chain.js';
import { auditKeysById } from './keys.js';

/**
 * The key to append to a chain with: the one its head names, which this process must hold.
 * A chain not keyed yet (`tether init` ran without the KEK) is appended to unkeyed until the
 * broker seals it; a keyed chain is never appended to unkeyed.
 */
function chainKey(head: AuditHead, tenantId: string): KeyObject | undefined {
  if (head.macKey === null) return undefined;
  const keys = auditKeysById(head.macKey);
  if (!keys) throw new Error(`the audit key of tenant ${tenantId}'s chain is not loaded in this process`);
  return keys.chain;
}

/**
 * Creates a tenant's empty chain, keyed from its first record with the store's audit key when
 * this process holds it. Unkeyed only where no process holding the KEK has keyed the store yet,
 * or this one does not hold it (`tether init` runs without the KEK): the broker seals such a
 * chain's unkeyed prefix at its next start.
 */
export async function insertAuditHead(h: StoreHandle, tenantId: string, hash: string): Promise<void> {
  const storeKey = await readStoreAuditKeyId(h);
  const macKey = storeKey !== undefined && auditKeysById(storeKey) ? storeKey : null;
  await insertAuditHeadRow(h, tenantId, hash, macKey);
}

/**
 * Appends `entry` to the tenant's chain inside the caller's transaction, so the record
 * exists exactly when the state change it describes does.
 */
export async function recordAudit(
  tx: TxHandle,
  tenantId: string,
  at: number,
  entry: AuditEntry,
): Promise<AuditRecord> {
  const head = await lockAuditHead(tx, tenantId);
  if (!head) throw new Error(`tenant ${tenantId} has no audit chain`);
  const record = chainNext(head, { tenantId, id: newId('audit'), at, entry }, chainKey(head, tenantId));
  await appendAuditRecord(tx, record);
  return record;
}

/**
 * Appends several entries to the tenant's chain at once, inside the caller's transaction: one
 * head lock, one insert per few hundred records, one head update. For work that records many
 * state changes together (a re-evaluation batch); the chain is the same as one by one.
 */
export async function recordAuditBatch(
  tx: TxHandle,
  tenantId: string,
  at: number,
  entries: readonly AuditEntry[],
): Promise<AuditRecord[]> {
  if (entries.length === 0) return [];
  const locked = await lockAuditHead(tx, tenantId);
  if (!locked) throw new Error(`tenant ${tenantId} has no audit chain`);
  const key = chainKey(locked, tenantId);
  let head: { seq: number; hash: string } = locked;
  const records: AuditRecord[] = [];
  for (const entry of entries) {
    const record = chainNext(head, { tenantId, id: newId('audit'), at, entry }, key);
    records.push(record);
    head = record;
  }
  await appendAuditRecords(tx, records);
  return records;
}

/**
 * Records a broker-wide event (a signing-key change, a settings change) in every tenant's chain,
 * inside the caller's transaction: each tenant's auditors see what changed under them.
 */
export async function recordAuditInEveryTenant(tx: TxHandle, at: number, entry: AuditEntry): Promise<void> {
  for (const head of await listAuditHeads(tx)) await recordAudit(tx, head.tenantId, at, entry);
}
