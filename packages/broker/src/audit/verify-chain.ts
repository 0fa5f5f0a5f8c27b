import type { StoreHandle } from '../store/database.js';
import {
  type AuditHead,
  listAuditCheckpoints,
  readAuditHead,
  readChainPage,
  readStoreAuditKeyId,
} from '../store/repositories/audit.js';
import { isAuthentic, writeCheckpoint } from './checkpoints.js';
import { type AuditKeys, auditKeysById } from './keys.js';
import { chunkRecordOf, RecordedChunks } from './recorded-chunks.js';
import { type ChainVerification, ChainVerifier } from './verify.js';

/**
 * Verifying a tenant's stored chain: reading it in one snapshot, checking its checkpoints'
 * tags, and checkpointing what verified. Appending lives in `record.ts`; checkpoints (which
 * append a record when they seal a chain) depend on it, and this module on both.
 */

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
      const chunks = new RecordedChunks();
      for (let offset = 0; ; offset += PAGE) {
        const page = await readChainPage(snapshot, tenantId, offset, PAGE);
        const intact = verifier.feed(page);
        if (intact) chunks.note(page);
        if (!intact || page.length < PAGE) break;
      }
      const verification = verifier.finish();
      // The recordings are checked against a chain that verified: only then is it evidence.
      const badChunk = verification.ok
        ? await chunks.compare(snapshot, tenantId, (sessionId) =>
            chunkRecordsOf(snapshot, tenantId, sessionId),
          )
        : undefined;
      if (badChunk) return { verification: { ok: false, checked: verification.checked, firstBad: badChunk } };
      return { verification, last: verifier.lastVerified(), keys };
    });
}

/** The chain's chunk records of one session (read again when its recording does not match). */
async function chunkRecordsOf(
  h: StoreHandle,
  tenantId: string,
  sessionId: string,
): Promise<Map<number, { sha256: string; seq: number; id: string }>> {
  const out = new Map<number, { sha256: string; seq: number; id: string }>();
  for (let offset = 0; ; offset += PAGE) {
    const page = await readChainPage(h, tenantId, offset, PAGE);
    for (const record of page) {
      const chunk = record.target === sessionId ? chunkRecordOf(record) : undefined;
      if (chunk) out.set(chunk.seq, { sha256: chunk.sha256, seq: record.seq, id: record.id });
    }
    if (page.length < PAGE) return out;
  }
}
