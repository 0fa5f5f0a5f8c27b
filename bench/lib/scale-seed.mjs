// Bulk seeding for the scale benchmark: live sessions written straight into a broker's SQLite
// file while its broker is stopped. Going through the API (request, approval, activation with a
// DPoP proof) costs ~10 ms a session: 111,000 of them would take the benchmark past 18 minutes.
// Each seeded session is a copy of one real session the API created (its request, its row, its
// status-list slot, its refresh token), with its own ids, key thumbprint, slot and token hash,
// laid out in status lists the way the allocator fills them (random indices, each list up to
// half of its 65,536 entries).
import { createHash, randomBytes, randomInt } from 'node:crypto';
import Database from 'better-sqlite3';
import { newId } from '../../packages/broker/dist/domain/ids.js';

const LIST_SIZE = 65_536;
const LIST_FILL = LIST_SIZE / 2;
/** Sessions per transaction: large enough to be quick, small enough to keep the WAL small. */
const BATCH = 5_000;
/** As the broker's SLOT_REUSE_MARGIN_MS: a slot is reusable this long after its session's hard expiry. */
const SLOT_REUSE_MARGIN_MS = 5 * 60_000;

function insertStatement(db, table, columns) {
  return db.prepare(
    `insert into ${table} (${columns.map((c) => `"${c}"`).join(', ')}) values (${columns.map((c) => `@${c}`).join(', ')})`,
  );
}

/** Free random indices of a list, `count` of them, avoiding those already taken. */
function freeIndices(db, listId, count) {
  const taken = new Set(
    db.prepare('select idx from status_list_slots where list_id = ?').pluck().all(listId),
  );
  const picked = [];
  while (picked.length < count) {
    const idx = randomInt(LIST_SIZE);
    if (taken.has(idx)) continue;
    taken.add(idx);
    picked.push(idx);
  }
  return picked;
}

/** Where the next `count` sessions go: the tenant's lists with room first, then new lists. */
function slotsFor(db, tenantId, count, now) {
  const lists = db
    .prepare('select id, slots from status_lists where tenant_id = ? order by id')
    .all(tenantId);
  const slots = [];
  for (const list of lists) {
    const room = Math.min(LIST_FILL - list.slots, count - slots.length);
    if (room > 0) for (const idx of freeIndices(db, list.id, room)) slots.push({ listId: list.id, idx });
  }
  const addList = db.prepare(
    'insert into status_lists (id, tenant_id, bits, size, created_at, version, slots) values (?, ?, 1, ?, ?, 0, 0)',
  );
  while (slots.length < count) {
    const id = randomInt(1, 2 ** 31 - 1);
    addList.run(id, tenantId, LIST_SIZE, now);
    for (const idx of freeIndices(db, id, Math.min(LIST_FILL, count - slots.length)))
      slots.push({ listId: id, idx });
  }
  return slots;
}

/**
 * Adds `count` live sessions modelled on session `templateId` to the SQLite store at `file`
 * (its broker stopped). Answers how long the seeding took (ms).
 */
export function seedLiveSessions(file, templateId, count) {
  const t0 = performance.now();
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  try {
    const session = db.prepare('select * from sessions where id = ?').get(templateId);
    const request = db.prepare('select * from access_requests where id = ?').get(session.request_id);
    const refresh = db.prepare('select * from refresh_tokens where session_id = ?').get(templateId);
    const now = Date.now();
    const hardExpiresAt = now + 3_600_000;
    const insertRequest = insertStatement(db, 'access_requests', Object.keys(request));
    const insertSession = insertStatement(db, 'sessions', Object.keys(session));
    const insertRefresh = insertStatement(db, 'refresh_tokens', Object.keys(refresh));
    const insertSlot = db.prepare(
      'insert into status_list_slots (list_id, idx, tenant_id, session_id, status, reusable_at) values (?, ?, ?, ?, 0, ?)',
    );
    const countSlot = db.prepare('update status_lists set slots = slots + ? where id = ?');
    for (let done = 0; done < count; done += BATCH) {
      const n = Math.min(BATCH, count - done);
      db.transaction(() => {
        const slots = slotsFor(db, session.tenant_id, n, now);
        const perList = new Map();
        for (const slot of slots) {
          const requestId = newId('request');
          const sessionId = newId('session');
          insertRequest.run({ ...request, id: requestId });
          insertSession.run({
            ...session,
            id: sessionId,
            request_id: requestId,
            jkt: randomBytes(32).toString('base64url'),
            activated_at: now,
            last_activity_at: now,
            hard_expires_at: hardExpiresAt,
            status_list_id: slot.listId,
            status_idx: slot.idx,
          });
          insertSlot.run(
            slot.listId,
            slot.idx,
            session.tenant_id,
            sessionId,
            hardExpiresAt + SLOT_REUSE_MARGIN_MS,
          );
          perList.set(slot.listId, (perList.get(slot.listId) ?? 0) + 1);
          insertRefresh.run({
            ...refresh,
            token_hash: createHash('sha256').update(randomBytes(32)).digest('hex'),
            session_id: sessionId,
            created_at: now,
            idle_expires_at: hardExpiresAt,
          });
        }
        for (const [listId, added] of perList) countSlot.run(added, listId);
      })();
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
  return performance.now() - t0;
}

/**
 * What the count this work removed would cost at this size: the live slots of the tenant's
 * fullest list, counted as every activation used to (`count(*)` … `reusable_at > now`), median
 * of `times` runs in ms. Read-only, beside the running broker (WAL readers do not block it).
 */
export function countCostMs(file, tenantId, times = 15) {
  const db = new Database(file, { readonly: true });
  try {
    const list = db
      .prepare('select id from status_lists where tenant_id = ? order by slots desc limit 1')
      .pluck()
      .get(tenantId);
    const count = db
      .prepare('select count(*) from status_list_slots where list_id = ? and reusable_at > ?')
      .pluck();
    const runs = [];
    for (let i = 0; i < times; i++) {
      const t0 = performance.now();
      count.get(list, Date.now());
      runs.push(performance.now() - t0);
    }
    runs.sort((a, b) => a - b);
    return runs[Math.floor(runs.length / 2)];
  } finally {
    db.close();
  }
}
