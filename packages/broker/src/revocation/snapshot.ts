import type { SessionEndedData, SessionNarrowedData } from '@tether-broker/protocol';
import type { StoreHandle } from '../store/database.js';
import { readRevocationHead } from '../store/repositories/revocations.js';
import { flaggedSlots, tenantStatusLists } from '../store/repositories/status-lists.js';
import { readTenantCutoff } from './tenant-cutoff.js';

/**
 * Clock skew allowed between the broker replicas that issue tokens and end sessions (seconds).
 * The status lists of a snapshot judge only tokens issued more than this before it was taken,
 * and the sessions that ended in the last two such spans are listed one by one.
 */
export const SNAPSHOT_SKEW_SECONDS = 10;

/** One of the tenant's status lists: which entries read non-VALID. */
export interface SnapshotStatusListEntries {
  listId: number;
  bits: 1 | 2 | 4 | 8;
  size: number;
  flagged: { idx: number; status: number }[];
}

/** What a snapshot says: the log's effect on live tokens up to `seq` (see `SnapshotClaims`). */
export interface RevocationSnapshot {
  tenantId: string;
  seq: number;
  /** When it was taken (epoch ms). */
  at: number;
  /** Epoch seconds: the status lists judge tokens issued before this. */
  statusBefore: number;
  statusLists: SnapshotStatusListEntries[];
  /** Sessions ended at or after `(statusBefore − skew)` seconds, by id. */
  ended: SessionEndedData[];
  narrowed: SessionNarrowedData[];
  cutoff: number;
  retiredKids: string[];
}

/**
 * The oldest position a stream can still resume from: events after it are all kept. It is the
 * position before the oldest kept event, or the head when every event has been compacted.
 */
export async function revocationFloor(h: StoreHandle, tenantId: string): Promise<number> {
  // One statement, so one snapshot on PostgreSQL: read apart, events committed between the two
  // reads could put the floor above events that exist, and a stream at 0 would be sent a
  // snapshot while the first events of the log commit.
  const row = await h.db
    .selectNoFrom((eb) => [
      eb
        .selectFrom('revocation_events')
        .select((e) => e.fn.min('seq').as('seq'))
        .where('tenant_id', '=', tenantId)
        .as('oldest'),
      eb.selectFrom('revocation_heads').select('seq').where('tenant_id', '=', tenantId).as('head'),
    ])
    .executeTakeFirstOrThrow();
  if (row.oldest !== null && row.oldest !== undefined) return Number(row.oldest) - 1;
  return Number(row.head ?? 0);
}

/**
 * Takes a snapshot standing for the head of the log, in one repeatable-read transaction (the
 * head and the state it summarises are read together; an event is written in the same
 * transaction as the state change it reports). Its size is a few kilobytes per 32,768
 * sessions held at once, whatever the number that have ended: those travel as status lists.
 */
export async function takeRevocationSnapshot(
  store: StoreHandle,
  tenantId: string,
  now: number,
): Promise<RevocationSnapshot> {
  const statusBefore = Math.floor(now / 1000) - SNAPSHOT_SKEW_SECONDS;
  return store.db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const h: StoreHandle = { db: trx, dialect: store.dialect };
      const keys = await trx
        .selectFrom('signing_keys')
        .select('kid')
        .where('state', '=', 'retired')
        .orderBy('kid')
        .execute();
      return {
        tenantId,
        seq: await readRevocationHead(h, tenantId),
        at: now,
        statusBefore,
        statusLists: await flaggedStatusLists(h, tenantId),
        ended: await sessionsEndedSince(h, tenantId, (statusBefore - SNAPSHOT_SKEW_SECONDS) * 1000, now),
        narrowed: await liveNarrowings(h, tenantId, now),
        cutoff: await readTenantCutoff(h, tenantId),
        retiredKids: keys.map((k) => k.kid),
      };
    });
}

/** The tenant's status lists that flag any entry, with the entries they flag. */
async function flaggedStatusLists(h: StoreHandle, tenantId: string): Promise<SnapshotStatusListEntries[]> {
  const lists: SnapshotStatusListEntries[] = [];
  for (const list of await tenantStatusLists(h, tenantId)) {
    const flagged = await flaggedSlots(h, list.id);
    if (flagged.length > 0)
      lists.push({ listId: list.id, bits: list.bits as 1 | 2 | 4 | 8, size: list.size, flagged });
  }
  return lists;
}

/** Sessions ended at or after `since` (epoch ms) whose tokens may still be presented. */
async function sessionsEndedSince(
  h: StoreHandle,
  tenantId: string,
  since: number,
  now: number,
): Promise<SessionEndedData[]> {
  const rows = await h.db
    .selectFrom('sessions')
    .select(['id', 'end_reason', 'hard_expires_at'])
    .where('tenant_id', '=', tenantId)
    .where('state', '=', 'ended')
    .where('ended_at', '>=', since)
    .where('hard_expires_at', '>', now)
    .orderBy('id')
    .execute();
  return rows.map((s) => ({
    sid: s.id,
    reason: s.end_reason ?? 'ended',
    session_exp: Math.floor(Number(s.hard_expires_at) / 1000),
  }));
}

/** Live sessions whose earlier tokens are refused (a narrowing in force). */
async function liveNarrowings(h: StoreHandle, tenantId: string, now: number): Promise<SessionNarrowedData[]> {
  const rows = await h.db
    .selectFrom('sessions')
    .select(['id', 'narrowed_before', 'hard_expires_at'])
    .where('tenant_id', '=', tenantId)
    .where('state', '!=', 'ended')
    .where('narrowed_before', 'is not', null)
    .where('hard_expires_at', '>', now)
    .orderBy('id')
    .execute();
  return rows.map((s) => ({
    sid: s.id,
    before: Number(s.narrowed_before),
    session_exp: Math.floor(Number(s.hard_expires_at) / 1000),
  }));
}

/**
 * Deletes every tenant's events written before `before` (epoch ms). Streams resuming from a
 * deleted position get a snapshot instead. The caller keeps `before` at least one access-token
 * lifetime in the past: a compacted narrowing is not in snapshots, which is safe only because
 * every token it refused has expired by itself. Returns how many events were deleted.
 */
export async function compactRevocationLog(store: StoreHandle, before: number): Promise<number> {
  const result = await store.db.deleteFrom('revocation_events').where('at', '<', before).executeTakeFirst();
  return Number(result.numDeletedRows ?? 0);
}
