import type { Act } from '../act.js';
import { call } from '../api.js';
import type { Me, Tenant } from '../types.js';
import { RequestLine } from './request-line.js';

/** The person's own requests and live sessions: end one, or ask for more time. */
export function Mine({ me, tenant, act }: { me: Me; tenant: Tenant | undefined; act: Act }) {
  const own = tenant?.requests.filter((r) => r.principal === me.principal.id);
  const live = tenant?.sessions.filter((s) => s.principal === me.principal.id && s.state === 'active');
  return (
    <section aria-labelledby="mine-title">
      <h3 id="mine-title">Your requests</h3>
      <ul id="mine" aria-labelledby="mine-title">
        {tenant &&
          own &&
          (own.length === 0 ? (
            <li>None</li>
          ) : (
            own.map((r) => (
              <li key={r.id}>
                <RequestLine request={r} tenant={tenant} />
                <span class="state">{r.state}</span>
              </li>
            ))
          ))}
      </ul>
      <h3 id="sessions-title">Your live sessions</h3>
      <ul id="sessions" aria-labelledby="sessions-title">
        {tenant &&
          live &&
          (live.length === 0 ? (
            <li>None</li>
          ) : (
            live.map((s) => (
              <li key={s.id}>
                <span class="what">
                  {`${tenant.privileges.get(s.privilege)?.name ?? s.privilege} · ${s.ticket ?? 'no ticket'} · until ${s.hard_expires_at}`}
                </span>
                <button
                  type="button"
                  onClick={act('End session', () =>
                    call('POST', `/v1/sessions/${s.id}/end`, { reason: 'completed' }),
                  )}
                >
                  {`End ${s.id}`}
                </button>
                <button
                  type="button"
                  onClick={act('Ask for more time', () =>
                    call('POST', `/v1/sessions/${s.id}/extend`, {
                      by: 1800,
                      justification: 'more time, asked in the console',
                    }),
                  )}
                >
                  {`30 more minutes for ${s.id}`}
                </button>
              </li>
            ))
          ))}
      </ul>
    </section>
  );
}
