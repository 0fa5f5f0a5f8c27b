import { TetherError } from '@tether-broker/protocol';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { revocationHead } from '../revocation/log.js';

/**
 * Where a PEP's stream starts: after the `Last-Event-ID` it sends when it reconnects, else
 * after `?after=`, else from the beginning of its tenant's log. Only principals with the
 * `pep` role may follow the log, and only their own tenant's. A position ahead of the log's
 * head is refused: it cannot come from this broker's log, and following it would skip events.
 * (Once old events are compacted away, a position behind the oldest kept one will need a
 * snapshot instead; nothing is compacted yet.)
 */
export async function revocationStreamStart(
  ctx: Pick<BrokerContext, 'store'>,
  caller: Caller,
  requested: { lastEventId?: string | undefined; after?: number | undefined },
): Promise<{ tenantId: string; after: number }> {
  requireRole(caller, 'pep');
  const after = requested.lastEventId === undefined ? (requested.after ?? 0) : Number(requested.lastEventId);
  if (!Number.isSafeInteger(after) || after < 0)
    throw new TetherError('invalid_request', 'the stream position must be a non-negative integer');
  const head = await revocationHead(ctx.store, caller.tenant.id);
  if (after > head)
    throw new TetherError(
      'invalid_request',
      `position ${after} is ahead of this tenant's revocation log, which ends at ${head}`,
    );
  return { tenantId: caller.tenant.id, after };
}
