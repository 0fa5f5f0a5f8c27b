import type { Act } from '../act.js';
import { call } from '../api.js';
import type { Privilege } from '../types.js';

/**
 * Asking for a privilege: only those the person is eligible for are offered (undefined while
 * the tenant is read).
 */
export function Ask({ eligible, act }: { eligible: Privilege[] | undefined; act: Act }) {
  const ask = (event: Event) => {
    event.preventDefault();
    const data = new FormData(event.currentTarget as HTMLFormElement);
    const body: Record<string, unknown> = {
      privilege: String(data.get('privilege')),
      justification: String(data.get('justification')),
      duration: Number(data.get('duration')) * 60,
    };
    const ticket = String(data.get('ticket') ?? '').trim();
    if (ticket) body['ticket'] = ticket;
    void act('Request', () => call('POST', '/v1/requests', body))();
  };
  return (
    <section aria-labelledby="ask-title">
      <h3 id="ask-title">Ask for a privilege</h3>
      {eligible?.length === 0 ? (
        <p id="ask-none">You are not eligible for any privilege.</p>
      ) : (
        <form id="ask-form" onSubmit={ask}>
          <label for="ask-privilege">Privilege</label>{' '}
          <select id="ask-privilege" name="privilege" required>
            {(eligible ?? []).map((p) => (
              <option key={p.id} value={p.name}>
                {p.name}
              </option>
            ))}
          </select>{' '}
          <label for="ask-ticket">Ticket</label> <input id="ask-ticket" name="ticket" maxLength={128} />{' '}
          <label for="ask-justification">Reason</label>{' '}
          <input id="ask-justification" name="justification" maxLength={2048} required />{' '}
          <label for="ask-duration">Minutes</label>{' '}
          <input
            id="ask-duration"
            name="duration"
            type="number"
            min={1}
            max={10080}
            defaultValue="60"
            required
          />{' '}
          <button type="submit">Ask</button>
        </form>
      )}
    </section>
  );
}
