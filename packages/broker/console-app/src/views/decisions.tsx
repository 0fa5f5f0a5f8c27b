import { useRef } from 'preact/hooks';
import type { Act } from '../act.js';
import { callVerified } from '../api.js';
import type { AccessRequest, Me, Tenant } from '../types.js';
import { RequestLine } from './request-line.js';

/**
 * Requests waiting for a decision by others (never the person's own): requester, privilege
 * (actions, resources), ticket, reason and duration; approve or deny with a comment.
 */
export function Decisions(props: {
  me: Me;
  tenant: Tenant | undefined;
  act: Act;
  say: (text: string) => void;
}) {
  const { me, tenant } = props;
  const waiting = tenant?.requests.filter((r) => r.state === 'pending' && r.principal !== me.principal.id);
  return (
    <section aria-labelledby="pending-title">
      <h3 id="pending-title">Requests waiting for a decision</h3>
      <ul id="pending" aria-labelledby="pending-title">
        {tenant &&
          waiting &&
          (waiting.length === 0 ? (
            <li>None</li>
          ) : (
            waiting.map((r) => (
              <Pending key={r.id} request={r} tenant={tenant} act={props.act} say={props.say} />
            ))
          ))}
      </ul>
    </section>
  );
}

function Pending(props: { request: AccessRequest; tenant: Tenant; act: Act; say: (text: string) => void }) {
  const { request: r, tenant, act, say } = props;
  const comment = useRef<HTMLInputElement>(null);
  const privilege = tenant.privileges.get(r.privilege);
  const review = (decision: 'approve' | 'deny') =>
    act(decision === 'approve' ? 'Approve' : 'Deny', () =>
      callVerified(`/v1/requests/${r.id}/${decision}`, { comment: comment.current?.value ?? '' }, say),
    );
  return (
    <li data-request={r.id}>
      <RequestLine request={r} tenant={tenant} />
      <span class="scope">
        {privilege ? `actions ${privilege.actions.join(', ')} on ${privilege.resources.join(', ')}` : ''}
      </span>
      <input type="text" ref={comment} maxLength={2048} aria-label={`Comment on ${r.id}`} />
      <button type="button" onClick={review('approve')}>
        {`Approve ${r.id}`}
      </button>
      <button type="button" onClick={review('deny')}>
        {`Deny ${r.id}`}
      </button>
    </li>
  );
}
