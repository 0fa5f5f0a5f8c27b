import { newId } from '../domain/ids.js';
import type { StoreHandle, TxHandle } from '../store/database.js';
import {
  appendAuditRecord,
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

const PAGE = 1000;

/** Verifies a tenant's whole chain, page by page. */
export async function verifyAuditChain(store: StoreHandle, tenantId: string): Promise<ChainVerification> {
  const verifier = new ChainVerifier();
  for (let offset = 0; ; offset += PAGE) {
    const page = await readChainPage(store, tenantId, offset, PAGE);
    if (!verifier.feed(page) || page.length < PAGE) break;
  }
  return verifier.finish(await readAuditHead(store, tenantId));
}
