import { minutes } from '../act.js';
import type { AccessRequest, Tenant } from '../types.js';

/** A request as its parts: privilege, ticket and duration; who asked; their reason (as text). */
export function RequestLine({ request: r, tenant }: { request: AccessRequest; tenant: Tenant }) {
  const privilege = tenant.privileges.get(r.privilege);
  return (
    <>
      <span class="what">
        {`${privilege ? privilege.name : r.privilege} · ${r.ticket ?? 'no ticket'} · ${minutes(r.duration)}`}
      </span>
      <span class="who">{`by ${tenant.names.get(r.principal) ?? r.principal}`}</span>
      <span class="reason">{r.justification}</span>
    </>
  );
}
