import { TetherError } from '@tether-broker/protocol';
import type { BrokerContext } from '../core/context.js';
import { findStatusList, flaggedSlots, type StatusListInfo } from '../store/repositories/status-lists.js';
import { statusListUri } from '../tokens/access-token.js';
import { signStatusList } from '../tokens/status-list-token.js';

interface SignedList {
  version: number;
  kid: string;
  signedAt: number;
  jwt: string;
}

interface ListCache {
  signed: Map<number, SignedList>;
  /** Signings under way, per list: concurrent fetches of a changed list sign it once. */
  signing: Map<number, { version: number; kid: string; done: Promise<string> }>;
}

/** Signed lists per broker, per list id. Bounded by the number of lists, which activations create. */
const caches = new WeakMap<BrokerContext, ListCache>();

function cacheOf(ctx: BrokerContext): ListCache {
  let cache = caches.get(ctx);
  if (!cache) {
    cache = { signed: new Map(), signing: new Map() };
    caches.set(ctx, cache);
  }
  return cache;
}

/**
 * The signed status list `n` (Token Status List §8), for any relying party: the draft expects
 * the list URI in a token to be fetchable without credentials, and the list reveals no more
 * than "entry i is invalid" under a random list id. It is re-signed only when it changed (its
 * version moved), when the signing key rotated, or once its `ttl` has passed since it was
 * signed; otherwise the last signed form is served after one small read of the list's row.
 */
export async function publishStatusList(ctx: BrokerContext, listId: number): Promise<string> {
  const list = await findStatusList(ctx.store, listId);
  if (!list) throw new TetherError('not_found', `no status list ${listId}`);
  const cache = cacheOf(ctx);
  const now = ctx.clock.now();
  const kid = ctx.keys.signer().kid;
  const cached = cache.signed.get(list.id);
  if (
    cached &&
    cached.version === list.version &&
    cached.kid === kid &&
    now - cached.signedAt < ctx.config.statusListTtlSeconds * 1000
  )
    return cached.jwt;
  const pending = cache.signing.get(list.id);
  if (pending && pending.version === list.version && pending.kid === kid) return pending.done;
  const done = signList(ctx, list, now);
  cache.signing.set(list.id, { version: list.version, kid, done });
  try {
    const jwt = await done;
    // The version read before the slots: a change between the two re-signs next time, never misses.
    const latest = cache.signed.get(list.id);
    if (!latest || latest.version <= list.version)
      cache.signed.set(list.id, { version: list.version, kid, signedAt: now, jwt });
    return jwt;
  } finally {
    if (cache.signing.get(list.id)?.done === done) cache.signing.delete(list.id);
  }
}

async function signList(ctx: BrokerContext, list: StatusListInfo, now: number): Promise<string> {
  return signStatusList(
    ctx.keys,
    {
      uri: statusListUri(ctx.config.publicUrl, list.id),
      bits: list.bits as 1,
      size: list.size,
      flagged: await flaggedSlots(ctx.store, list.id),
    },
    { issuer: ctx.config.publicUrl, now, ttlSeconds: ctx.config.statusListTtlSeconds },
  );
}
