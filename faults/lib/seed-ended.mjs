// Many ended sessions in a stopped broker's SQLite store, fast: a trial of PEP catch-up needs
// 100,000 of them, and ending them one by one over the API would take the better part of an
// hour. Each is a copy of a real session the broker activated and ended (`template`), written as
// `endSessionIn` writes an end — session row ended, its own status-list slot flagged INVALID,
// a `session_ended` event at the next position of the log — so the store holds what 100,000
// real ends would leave (without their audit records, which no PEP reads).
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';

const LIST_SIZE = 65_536;
/** The broker fills a list to half before it opens another (services/status-slots.ts). */
const LIST_FILL = LIST_SIZE / 2;

const newId = (prefix) => `${prefix}_${randomBytes(16).toString('base64url')}`;

/**
 * Adds `count` ended sessions to the tenant of `templateSessionId`, ended between `endedFrom`
 * and `endedTo` (epoch ms), live until `hardExpiresAt`. The broker must be stopped.
 * Returns the tenant's new log head.
 */
export function seedEndedSessions(file, { templateSessionId, count, endedFrom, endedTo, hardExpiresAt }) {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    const session = db.prepare('select * from sessions where id = ?').get(templateSessionId);
    if (session?.state !== 'ended') throw new Error('the template must be an ended session');
    const request = db.prepare('select * from access_requests where id = ?').get(session.request_id);
    const tenantId = session.tenant_id;
    const insert = (table, row) => {
      const columns = Object.keys(row);
      return db.prepare(
        `insert into ${table} (${columns.join(', ')}) values (${columns.map((c) => `@${c}`).join(', ')})`,
      );
    };
    const insertRequest = insert('access_requests', request);
    const insertSession = insert('sessions', session);
    const insertList = db.prepare(
      'insert into status_lists (tenant_id, bits, size, created_at, version) values (?, 1, ?, ?, 1) returning id',
    );
    const insertSlot = db.prepare(
      'insert into status_list_slots (list_id, idx, tenant_id, session_id, status, reusable_at) values (?, ?, ?, ?, 1, ?)',
    );
    const insertEvent = db.prepare(
      "insert into revocation_events (tenant_id, seq, type, subject, payload, at) values (?, ?, 'session_ended', ?, ?, ?)",
    );
    const head = () =>
      db.prepare('select seq from revocation_heads where tenant_id = ?').get(tenantId)?.seq ?? 0;

    const seed = db.transaction(() => {
      let seq = head();
      let list;
      let used = new Set();
      for (let i = 0; i < count; i++) {
        if (list === undefined || used.size >= LIST_FILL) {
          list = insertList.get(tenantId, LIST_SIZE, endedFrom).id;
          used = new Set();
        }
        let idx;
        do idx = Math.floor(Math.random() * LIST_SIZE);
        while (used.has(idx));
        used.add(idx);
        const endedAt = Math.round(endedFrom + ((endedTo - endedFrom) * i) / count);
        const requestId = newId('req');
        const sessionId = newId('ses');
        insertRequest.run({ ...request, id: requestId });
        insertSession.run({
          ...session,
          id: sessionId,
          request_id: requestId,
          status_list_id: list,
          status_idx: idx,
          ended_at: endedAt,
          hard_expires_at: hardExpiresAt,
        });
        insertSlot.run(list, idx, tenantId, sessionId, hardExpiresAt + 5 * 60_000);
        seq += 1;
        const data = { sid: sessionId, reason: 'revoked', session_exp: Math.floor(hardExpiresAt / 1000) };
        insertEvent.run(tenantId, seq, sessionId, JSON.stringify(data), endedAt);
      }
      db.prepare('update revocation_heads set seq = ? where tenant_id = ?').run(seq, tenantId);
      return seq;
    });
    return seed();
  } finally {
    db.close();
  }
}
