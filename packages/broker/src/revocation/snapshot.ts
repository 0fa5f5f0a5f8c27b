import type { SessionEndedData, SessionNarrowedData } from '@tether/protocol';
import { readRevocationEvent } from '@tether/protocol';
import type { StoreHandle } from '../store/database.js';
import { readRevocationHead } from '../store/repositories/revocations.js';

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
  const oldest = await h.db
    .selectFrom('revocation_events')
    .select((eb) => eb.fn.min('seq').as('seq'))
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst();
  const seq = oldest?.seq;
  if (seq !== null && seq !== undefined) return Number(seq) - 1;
  return readRevocationHead(h, tenantId);
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
      const seq = await readRevocationHead({ db: trx, dialect: store.dialect }, tenantId);
      const lists = await trx
        .selectFrom('status_lists')
        .select(['id', 'bits', 'size'])
        .where('tenant_id', '=', tenantId)
        .orderBy('id')
        .execute();
      const statusLists: SnapshotStatusListEntries[] = [];
      for (const list of lists) {
        const flagged = await trx
          .selectFrom('status_list_slots')
          .select(['idx', 'status'])
          .where('list_id', '=', list.id)
          .where('status', '!=', 0)
          .execute();
        if (flagged.length > 0)
          statusLists.push({ listId: list.id, bits: list.bits as 1 | 2 | 4 | 8, size: list.size, flagged });
      }
      const recent = await trx
        .selectFrom('sessions')
        .select(['id', 'end_reason', 'hard_expires_at'])
        .where('tenant_id', '=', tenantId)
        .where('state', '=', 'ended')
        .where('ended_at', '>=', (statusBefore - SNAPSHOT_SKEW_SECONDS) * 1000)
        .where('hard_expires_at', '>', now)
        .orderBy('id')
        .execute();
      const narrowed = await trx
        .selectFrom('sessions')
        .select(['id', 'narrowed_before', 'hard_expires_at'])
        .where('tenant_id', '=', tenantId)
        .where('state', '!=', 'ended')
        .where('narrowed_before', 'is not', null)
        .where('hard_expires_at', '>', now)
        .orderBy('id')
        .execute();
      const cutoffs = await trx
        .selectFrom('revocation_events')
        .select(['type', 'payload'])
        .where('tenant_id', '=', tenantId)
        .where('type', '=', 'tenant_cutoff')
        .execute();
      const keys = await trx
        .selectFrom('signing_keys')
        .select('kid')
        .where('state', '=', 'retired')
        .orderBy('kid')
        .execute();
      return {
        tenantId,
        seq,
        at: now,
        statusBefore,
        statusLists,
        ended: recent.map((s) => ({
          sid: s.id,
          reason: s.end_reason ?? 'ended',
          session_exp: Math.floor(Number(s.hard_expires_at) / 1000),
        })),
        narrowed: narrowed.map((s) => ({
          sid: s.id,
          before: Number(s.narrowed_before),
          session_exp: Math.floor(Number(s.hard_expires_at) / 1000),
        })),
        cutoff: cutoffs.reduce((latest, row) => {
          const event = readRevocationEvent(row.type, JSON.parse(row.payload));
          return event?.type === 'tenant_cutoff' ? Math.max(latest, event.data.before) : latest;
        }, 0),
        retiredKids: keys.map((k) => k.kid),
      };
    });
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
