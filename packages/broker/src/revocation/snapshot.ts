import type { SessionEndedData } from '@tether/protocol';
import type { StoreHandle } from '../store/database.js';
import { readRevocationHead } from '../store/repositories/revocations.js';

/** What a snapshot says: the log's effect on live tokens up to `seq`. */
export interface RevocationSnapshot {
  tenantId: string;
  seq: number;
  /** When it was taken (epoch ms). */
  at: number;
  ended: SessionEndedData[];
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
 * Takes a snapshot in one repeatable-read transaction: the tenant's ended sessions whose hard
 * expiry has not passed (their tokens could still be presented) and every retired key, as of
 * now, standing for position `seq` = the floor (the oldest position still resumable). The state
 * read covers every event up to the floor and possibly later ones; the stream then sends the
 * events after the floor, which the PEP applies again harmlessly (ending an ended session
 * changes nothing) — and which carry the narrowings a snapshot does not list.
 */
export async function takeRevocationSnapshot(
  store: StoreHandle,
  tenantId: string,
  now: number,
): Promise<RevocationSnapshot> {
  return store.db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const snapshot: StoreHandle = { db: trx, dialect: store.dialect };
      const seq = await revocationFloor(snapshot, tenantId);
      const sessions = await trx
        .selectFrom('sessions')
        .select(['id', 'end_reason', 'hard_expires_at'])
        .where('tenant_id', '=', tenantId)
        .where('state', '=', 'ended')
        .where('hard_expires_at', '>', now)
        .orderBy('id')
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
        ended: sessions.map((s) => ({
          sid: s.id,
          reason: s.end_reason ?? 'ended',
          session_exp: Math.floor(Number(s.hard_expires_at) / 1000),
        })),
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
