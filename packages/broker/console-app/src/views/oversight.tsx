import { useState } from 'preact/hooks';
import type { Act } from '../act.js';
import { call, messageOf } from '../api.js';
import type { AuditRecord, Receipt, Recording, Session, Tenant } from '../types.js';
import { AuditTrail, type Trail } from './audit-trail.js';
import { type OpenRecording, RecordingView } from './recording.js';

/**
 * Admins and auditors: the tenant's sessions (active first) with their enforcement receipts,
 * audit trails and recordings; revoking (admins); verifying the audit trail.
 */
export function Oversight(props: {
  admin: boolean;
  tenant: Tenant | undefined;
  act: Act;
  say: (text: string) => void;
}) {
  const { admin, tenant, act, say } = props;
  const [trail, setTrail] = useState<Trail>();
  const [recording, setRecording] = useState<OpenRecording>();

  const showTrail = (query: string, what: string) =>
    call<{ records: AuditRecord[] }>('GET', `/v1/audit?${query}`)
      .then(({ records }) => setTrail({ what, records }))
      .catch((err) => say(messageOf(err)));
  const showRecording = (id: string) =>
    call<Recording>('GET', `/v1/sessions/${id}/recording`)
      .then((r) => setRecording((before) => ({ id, recording: r, opened: (before?.opened ?? 0) + 1 })))
      .catch((err) => say(messageOf(err)));

  const revoke = (event: Event) => {
    event.preventDefault();
    const data = new FormData(event.currentTarget as HTMLFormElement);
    const body = {
      [String(data.get('kind'))]: String(data.get('value')).trim(),
      note: 'revoked in the console',
    };
    void act('Revoke', async () => {
      const r = await call<{ revoked: string[] }>('POST', '/v1/sessions/revoke', body);
      return `Revoked ${r.revoked.length} session(s).`;
    })();
  };
  const trailOfTicket = (event: Event) => {
    event.preventDefault();
    const ticket = String(new FormData(event.currentTarget as HTMLFormElement).get('ticket')).trim();
    void showTrail(`ticket=${encodeURIComponent(ticket)}`, `ticket ${ticket}`);
  };
  const verify = async () => {
    try {
      const v = await call<{ ok: boolean; checked: number }>('GET', '/v1/audit/verify');
      say(
        v.ok
          ? `The audit trail verifies: ${v.checked} records checked.`
          : `The audit trail does NOT verify: ${JSON.stringify(v)}`,
      );
    } catch (err) {
      say(`Verify failed: ${messageOf(err)}`);
    }
  };

  const shown = tenant
    ? [...tenant.sessions].sort((a, b) => (a.state === b.state ? 0 : a.state === 'active' ? -1 : 1))
    : undefined;
  return (
    <section id="oversight" aria-labelledby="live-title">
      <h3 id="live-title">Sessions in the tenant</h3>
      <ul id="live" aria-labelledby="live-title">
        {tenant &&
          shown &&
          (shown.length === 0 ? (
            <li>None</li>
          ) : (
            shown.map((s) => (
              <LiveSession
                key={s.id}
                session={s}
                tenant={tenant}
                admin={admin}
                act={act}
                say={say}
                showTrail={() => showTrail(`session=${s.id}`, s.id)}
                showRecording={() => showRecording(s.id)}
              />
            ))
          ))}
      </ul>
      <button type="button" id="verify" onClick={verify}>
        Verify the audit trail
      </button>
      <form id="revoke-form" hidden={!admin} onSubmit={revoke}>
        <label for="revoke-kind">Revoke every session of a</label>{' '}
        <select id="revoke-kind" name="kind">
          <option value="ticket">ticket</option>
          <option value="principal">principal</option>
          <option value="privilege">privilege</option>
        </select>{' '}
        <label for="revoke-value">named</label>{' '}
        <input id="revoke-value" name="value" maxLength={128} required />{' '}
        <button type="submit">Revoke them</button>
      </form>
      <form id="trail-form" onSubmit={trailOfTicket}>
        <label for="trail-ticket">Audit trail of ticket</label>{' '}
        <input id="trail-ticket" name="ticket" maxLength={128} required /> <button type="submit">Show</button>
      </form>
      <AuditTrail trail={trail} />
      <RecordingView open={recording} />
    </section>
  );
}

function LiveSession(props: {
  session: Session;
  tenant: Tenant;
  admin: boolean;
  act: Act;
  say: (text: string) => void;
  showTrail: () => void;
  showRecording: () => void;
}) {
  const { session: s, tenant, admin, act, say } = props;
  const [receipt, setReceipt] = useState('');
  const showReceipt = () =>
    call<Receipt>('GET', `/v1/sessions/${s.id}/receipt`)
      .then((r) => setReceipt(receiptLine(r)))
      .catch((err) => say(messageOf(err)));
  return (
    <li data-session={s.id}>
      <span class="what">
        {`${tenant.names.get(s.principal) ?? s.principal} · ${tenant.privileges.get(s.privilege)?.name ?? s.privilege} · ${s.ticket ?? 'no ticket'} · ${s.state}${s.end_reason ? ` (${s.end_reason})` : ''}`}
      </span>
      <button type="button" onClick={showReceipt}>{`Receipt of ${s.id}`}</button>
      <button type="button" onClick={props.showTrail}>{`Audit trail of ${s.id}`}</button>
      <button type="button" onClick={props.showRecording}>{`Recording of ${s.id}`}</button>
      {admin && s.state === 'active' && (
        <button
          type="button"
          onClick={act('Revoke', () => call('POST', `/v1/sessions/${s.id}/end`, { reason: 'revoked' }))}
        >
          {`Revoke ${s.id}`}
        </button>
      )}
      <span class="receipt" role="status">
        {receipt}
      </span>
    </li>
  );
}

/** A receipt in one line: its state, whether enforced, by which PEPs when, which are pending. */
function receiptLine(r: Receipt): string {
  const peps = r.peps.map((p) => p.name + (p.enforced_at ? ` at ${p.enforced_at}` : '')).join(', ') || 'none';
  return (
    r.state +
    (r.enforced ? ' · enforced' : '') +
    ` · PEPs: ${peps}` +
    (r.pending.length ? ` · pending: ${r.pending.join(', ')}` : '')
  );
}
