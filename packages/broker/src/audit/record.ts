import type { KeyObject } from 'node:crypto';
import { newId } from '../domain/ids.js';
import type { StoreHandle, TxHandle } from '../store/database.js';
import {
  type AuditHead,
  appendAuditRecord,
  appendAuditRecords,
  insertAuditHeadRow,
  listAuditCheckpoints,
  listAuditHeads,
  lockAuditHead,
  readAuditHead,
  readChainPage,
  readStoreAuditKeyId,
} from '../store/repositories/audit.js';
import { type AuditEntry, type AuditRecord, chainNext } from './chain.js';
import { isAuthentic, writeCheckpoint } from './checkpoints.js';
import { type AuditKeys, auditKeysById } from './keys.js';
import { type ChainVerification, ChainVerifier } from './verify.js';

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

const PAGE = 1000;

/** The audit keys to verify a chain with: those its head names, else the store's. */
async function verificationKeys(h: StoreHandle, head: AuditHead | undefined): Promise<AuditKeys | undefined> {
  const id = head?.macKey ?? (await readStoreAuditKeyId(h));
  return id === undefined ? undefined : auditKeysById(id);
}

/**
 * Verifies a tenant's whole chain, page by page, in one read-only snapshot: records appended
 * while it runs are neither half-seen nor mistaken for a truncated or extended chain.
 */
export async function verifyAuditChain(store: StoreHandle, tenantId: string): Promise<ChainVerification> {
  return (await verifyInSnapshot(store, tenantId)).verification;
}

/**
 * Verifies a tenant's chain and, when it is intact, checkpoints the end it verified: every
 * verification narrows the tail that could be truncated unseen to what is written after it.
 */
export async function verifyAndCheckpoint(
  store: StoreHandle,
  tenantId: string,
  now: number,
): Promise<ChainVerification> {
  const { verification, last, keys } = await verifyInSnapshot(store, tenantId);
  if (verification.ok && last && keys)
    await writeCheckpoint(store, keys, { tenantId, seq: last.seq, hash: last.hash, at: now, kind: 'verify' });
  return verification;
}

async function verifyInSnapshot(
  store: StoreHandle,
  tenantId: string,
): Promise<{
  verification: ChainVerification;
  last?: { seq: number; hash: string } | undefined;
  keys?: AuditKeys | undefined;
}> {
  return store.db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const snapshot: StoreHandle = { db: trx, dialect: store.dialect };
      const head = await readAuditHead(snapshot, tenantId);
      const keys = await verificationKeys(snapshot, head);
      const checkpoints = await listAuditCheckpoints(snapshot, tenantId);
      // A checkpoint nobody holding the KEK made is itself evidence of tampering.
      const forged = checkpoints.find((cp) => !keys || !isAuthentic(keys, cp));
      if (forged)
        return {
          verification: {
            ok: false,
            checked: 0,
            firstBad: {
              seq: forged.seq,
              id: '',
              fault: 'checkpoint_forged',
              message: `the checkpoint at record ${forged.seq} was not made by the broker`,
            },
          },
        };
      const seal = checkpoints.filter((cp) => cp.kind === 'legacy_seal').at(-1);
      const verifier = new ChainVerifier(head, {
        key: keys?.chain,
        unkeyedUntil: seal?.seq ?? 0,
        checkpoints,
      });
      for (let offset = 0; ; offset += PAGE) {
        const page = await readChainPage(snapshot, tenantId, offset, PAGE);
        if (!verifier.feed(page) || page.length < PAGE) break;
      }
      return { verification: verifier.finish(), last: verifier.lastVerified(), keys };
    });
}
