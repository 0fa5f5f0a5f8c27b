// What the clients of a fault trial were told (acknowledged), and what the store says after:
// the difference is a loss. Read straight from the store, not through the broker.
import Database from 'better-sqlite3';
import pg from 'pg';
import { PG_URL } from '../../bench/lib/broker.mjs';

export class Ledger {
  /** session id → hard expiry (ms), for every activation the broker answered 2xx. */
  activated = new Map();
  /** Session ids whose end the broker answered 2xx. */
  ended = new Set();
  /** Calls that failed: by what the client saw (`refused`, `503`, `500`, …). */
  failures = {};
  /** Server errors other than 503 on any call: a bug whatever the fault. */
  serverErrors = 0;

  failed(kind) {
    this.failures[kind] = (this.failures[kind] ?? 0) + 1;
    if (/^5\d\d$/.test(kind) && kind !== '503') this.serverErrors++;
  }
}

/** Rows of `sql` from the broker's store (SQLite file opened read-only, or the PostgreSQL schema). */
export async function queryStore(broker, sql, params = []) {
  if (broker.dialect === 'sqlite') {
    const db = new Database(broker.location, { readonly: true, fileMustExist: true });
    try {
      return db.prepare(sql.replace(/\$\d+/g, '?')).all(...params);
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${broker.pgSchema}` });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The losses a trial's ledger shows against the store: acknowledged activations missing,
 * acknowledged ends not ended, ends without their revocation event, sessions alive past
 * their hard expiry (beyond the sweep's slack).
 */
export async function audit(broker, ledger, { now = Date.now(), slackMs = 5000 } = {}) {
  const sessions = new Map(
    (await queryStore(broker, 'select id, state, hard_expires_at from sessions')).map((r) => [r.id, r]),
  );
  const events = new Set(
    (await queryStore(broker, "select subject from revocation_events where type = 'session_ended'")).map(
      (r) => r.subject,
    ),
  );
  const lostActivations = [...ledger.activated.keys()].filter((id) => !sessions.has(id));
  const lostEnds = [...ledger.ended].filter((id) => sessions.get(id)?.state !== 'ended');
  const missingEvents = [...ledger.ended].filter((id) => !events.has(id));
  const pastExpiry = [...sessions.values()].filter(
    (s) => s.state === 'active' && Number(s.hard_expires_at) < now - slackMs,
  );
  return {
    lostActivations: lostActivations.length,
    lostEnds: lostEnds.length,
    missingEvents: missingEvents.length,
    pastExpiry: pastExpiry.length,
    losses: lostActivations.length + lostEnds.length + missingEvents.length + pastExpiry.length,
  };
}
