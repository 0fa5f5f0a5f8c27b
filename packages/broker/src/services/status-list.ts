import { TetherError } from '@tether/protocol';
import { findStatusList, flaggedSlots } from '../store/repositories/status-lists.js';
import { statusListUri } from '../tokens/access-token.js';
import { signStatusList } from '../tokens/status-list-token.js';
import type { BrokerContext, Caller } from './context.js';

/** The signed status list `n`, for principals of the tenant it belongs to. */
export async function publishStatusList(ctx: BrokerContext, caller: Caller, listId: number): Promise<string> {
  const list = await findStatusList(ctx.store, listId);
  if (!list || list.tenantId !== caller.tenant.id)
    throw new TetherError('not_found', `no status list ${listId} in this tenant`);
  return signStatusList(
    ctx.keys,
    {
      uri: statusListUri(ctx.config.publicUrl, list.id),
      bits: list.bits as 1,
      size: list.size,
      flagged: await flaggedSlots(ctx.store, list.id),
    },
    { issuer: ctx.config.publicUrl, now: ctx.clock.now(), ttlSeconds: ctx.config.statusListTtlSeconds },
  );
}
