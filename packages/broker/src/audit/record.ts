import { newId } from '../domain/ids.js';
import type { StoreHandle, TxHandle } from '../store/database.js';
import {
  appendAuditRecord,
  appendAuditRecords,
  lockAuditHead,
  readAuditHead,
  readChainPage,
} from '../store/repositories/audit.js';
import { type AuditEntry, type AuditRecord, chainNext } from './chain.js';
import { type ChainVerification, ChainVerifier } from './verify.js';

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
  const record = chainNext(head, { tenantId, id: newId('audit'), at, entry });
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
  let head = await lockAuditHead(tx, tenantId);
  if (!head) throw new Error(`tenant ${tenantId} has no audit chain`);
  const records: AuditRecord[] = [];
  for (const entry of entries) {
    const record = chainNext(head, { tenantId, id: newId('audit'), at, entry });
    records.push(record);
    head = record;
  }
  await appendAuditRecords(tx, records);
  return records;
}

const PAGE = 1000;

/**
 * Verifies a tenant's whole chain, page by page, in one read-only snapshot: records appended
 * while it runs are neither half-seen nor mistaken for a truncated or extended chain.
 */
export async function verifyAuditChain(store: StoreHandle, tenantId: string): Promise<ChainVerification> {
  return store.db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const snapshot: StoreHandle = { db: trx, dialect: store.dialect };
      const verifier = new ChainVerifier(await readAuditHead(snapshot, tenantId));
      for (let offset = 0; ; offset += PAGE) {
        const page = await readChainPage(snapshot, tenantId, offset, PAGE);
        if (!verifier.feed(page) || page.length < PAGE) break;
      }
      return verifier.finish();
    });
}
