import { createHmac, timingSafeEqual } from 'node:crypto';
import { TetherError } from '@tether-broker/protocol';
import canonicalizeModule from 'canonicalize';
import type { Logger } from 'pino';
import type { Kek } from '../config/key-encryption.js';
import { inTransaction, type StoreHandle } from '../store/database.js';
import {
  type AuditCheckpoint,
  insertAuditCheckpoint,
  insertStoreAuditKeyId,
  latestCheckpointSeqs,
  listAuditHeads,
  listAuditRecords,
  lockAuditHead,
  readStoreAuditKeyId,
  setAuditHeadKey,
} from '../store/repositories/audit.js';
import { KEYED, macRecord } from './chain.js';
import { type AuditKeys, loadAuditKeys } from './keys.js';
import { recordAudit } from './record.js';

const canonicalize = canonicalizeModule as unknown as (input: unknown) => string | undefined;

/** Why a checkpoint was taken. `legacy_seal` also bounds the unkeyed prefix of a chain. */
export type CheckpointKind = 'legacy_seal' | 'timer' | 'verify';

type Unsigned = Omit<AuditCheckpoint, 'tag'>;

function tagOf(keys: AuditKeys, cp: Unsigned): string {
  const canonical = canonicalize({
    tenant_id: cp.tenantId,
    seq: cp.seq,
    hash: cp.hash,
    at: cp.at,
    kind: cp.kind,
    key_id: cp.keyId,
  });
  if (canonical === undefined) throw new Error('checkpoint cannot be canonicalised');
  return createHmac('sha256', keys.checkpoint).update(canonical, 'utf8').digest('hex');
}

/** True when the checkpoint was made by a holder of the KEK (its tag verifies). */
export function isAuthentic(keys: AuditKeys, cp: AuditCheckpoint): boolean {
  const expected = Buffer.from(tagOf(keys, cp), 'utf8');
  const actual = Buffer.from(cp.tag, 'utf8');
  return cp.keyId === keys.id && expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** Stores an authenticated checkpoint of a chain's head `(seq, hash)`. */
export async function writeCheckpoint(
  h: StoreHandle,
  keys: AuditKeys,
  cp: { tenantId: string; seq: number; hash: string; at: number; kind: CheckpointKind },
): Promise<void> {
  const unsigned: Unsigned = { ...cp, keyId: keys.id };
  await insertAuditCheckpoint(h, { ...unsigned, tag: tagOf(keys, unsigned) });
}

/**
 * Derives the audit keys from the KEK, loads them into this process and records their id as
 * the store's (the first start after migration 0011 does). A store whose chains are keyed with
 * another KEK's keys is refused: appending to its chains would fail, verifying them would fail.
 */
export async function adoptAuditKeys(store: StoreHandle, kek: Kek, now: number): Promise<AuditKeys> {
  const keys = loadAuditKeys(kek);
  const recorded = await readStoreAuditKeyId(store);
  if (recorded === undefined) await insertStoreAuditKeyId(store, keys.id, now);
  else if (recorded !== keys.id)
    throw new TetherError(
      'store_unavailable',
      'the audit chains are keyed with another key-encryption key (is TETHER_KEK the one the store was created with?)',
    );
  return keys;
}

/**
 * Keys every chain that is not keyed yet: chains written before migration 0011, and those of
 * tenants created by `tether init` (which runs without the KEK). In one transaction per chain,
 * its head is checkpointed (`legacy_seal`: verification accepts unkeyed records up to there and
 * no further, and the checkpoint's hash pins the whole unkeyed prefix, each record being linked
 * to the one before), the head is keyed, and a keyed `audit.chain_keyed` record says so.
 * Runs at start only; see README "Security model" for what a database writer can still do to
 * a chain before it is keyed.
 */
export async function sealLegacyChains(
  store: StoreHandle,
  keys: AuditKeys,
  now: number,
  logger?: Logger,
): Promise<number> {
  let sealed = 0;
  for (const head of await listAuditHeads(store)) {
    if (head.macKey !== null) continue;
    const done = await inTransaction(store, async (tx) => {
      const locked = await lockAuditHead(tx, head.tenantId);
      if (!locked || locked.macKey !== null) return false;
      if (locked.seq > 0)
        await writeCheckpoint(tx, keys, {
          tenantId: head.tenantId,
          seq: locked.seq,
          hash: locked.hash,
          at: now,
          kind: 'legacy_seal',
        });
      await setAuditHeadKey(tx, head.tenantId, keys.id);
      await recordAudit(tx, head.tenantId, now, {
        actor: 'broker',
        action: 'audit.chain_keyed',
        target: head.tenantId,
        outcome: 'success',
        details: { unkeyed_records: locked.seq, key_id: keys.id },
      });
      return true;
    });
    if (done) {
      sealed += 1;
      logger?.warn(
        { tenant: head.tenantId, unkeyedRecords: head.seq },
        'keyed an audit chain: its unkeyed records are sealed by a checkpoint from here on',
      );
    }
  }
  return sealed;
}

/**
 * Checkpoints every keyed chain whose head moved since its last checkpoint. Run on a timer
 * (`auditCheckpointIntervalSeconds`): whoever deletes a chain's tail can move the head back,
 * but not past a checkpoint, so truncation goes unseen only for records written after the
 * latest checkpoint.
 */
export async function checkpointMovedChains(
  store: StoreHandle,
  keys: AuditKeys,
  now: number,
  kind: CheckpointKind = 'timer',
): Promise<{ tenantId: string; seq: number; hash: string }[]> {
  const latest = await latestCheckpointSeqs(store);
  const written: { tenantId: string; seq: number; hash: string }[] = [];
  for (const head of await listAuditHeads(store)) {
    if (head.macKey !== keys.id || head.seq === 0 || (latest.get(head.tenantId) ?? 0) >= head.seq) continue;
    // Never checkpoint a head that is not a record the broker wrote: a checkpoint vouches for it.
    const [last] = await listAuditRecords(store, head.tenantId, { afterSeq: head.seq - 1, limit: 1 });
    if (!last || last.seq !== head.seq || last.hash !== head.hash || last.macVersion !== KEYED) continue;
    const { hash, ...fields } = last;
    if (macRecord(fields, keys.chain) !== hash) continue;
    await writeCheckpoint(store, keys, {
      tenantId: head.tenantId,
      seq: head.seq,
      hash: head.hash,
      at: now,
      kind,
    });
    written.push({ tenantId: head.tenantId, seq: head.seq, hash: head.hash });
  }
  return written;
}

/** When each broker last checkpointed on its timer (one entry per broker context in this process). */
const lastTimerCheckpoint = new WeakMap<object, number>();

/**
 * Checkpoints moved chains at most once per `auditCheckpointIntervalSeconds`; the sweeper calls
 * it on every sweep.
 */
export async function checkpointOnSchedule(
  ctx: { store: StoreHandle; kek: Kek; logger?: Logger; config: { auditCheckpointIntervalSeconds: number } },
  now: number,
): Promise<number> {
  const last = lastTimerCheckpoint.get(ctx);
  if (last !== undefined && now - last < ctx.config.auditCheckpointIntervalSeconds * 1000) return 0;
  lastTimerCheckpoint.set(ctx, now);
  const written = await checkpointMovedChains(ctx.store, loadAuditKeys(ctx.kek), now, 'timer');
  // Published in the log too: a copy kept outside the database outlives a writer who deletes
  // checkpoints along with the tail they cover.
  for (const cp of written)
    ctx.logger?.info({ tenant: cp.tenantId, seq: cp.seq, hash: cp.hash }, 'audit checkpoint');
  return written.length;
}
