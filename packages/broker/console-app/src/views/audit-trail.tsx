import type { AuditRecord } from '../types.js';

/** The audit records of a session or a ticket. */
export interface Trail {
  what: string;
  records: AuditRecord[];
}

/** An audit trail, each record as one line of text (none shown until one is asked for). */
export function AuditTrail({ trail }: { trail: Trail | undefined }) {
  return (
    <>
      <h4 id="trail-title">{trail ? `Audit trail of ${trail.what}` : 'Audit trail'}</h4>
      <ul id="trail" aria-labelledby="trail-title">
        {trail &&
          (trail.records.length === 0 ? (
            <li>None</li>
          ) : (
            trail.records.map((r, i) => (
              // Records have no id here: the list is replaced whole, never reordered.
              <li key={i}>{`${r.at} · ${r.action} · ${r.outcome} · by ${r.actor}`}</li>
            ))
          ))}
      </ul>
    </>
  );
}
