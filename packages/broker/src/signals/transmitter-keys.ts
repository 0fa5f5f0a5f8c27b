import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  type FetchImplementation,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
} from 'jose';
import { SIGNAL_LIMITS, type SignalTransmitter } from '../domain/transmitter.js';

/** A JWKS document larger than the limit: the fetch is cut off, nothing of it is used. */
export class JwksTooLarge extends Error {
  constructor() {
    super(`the JWKS document is larger than ${SIGNAL_LIMITS.maxJwksBytes} bytes`);
    this.name = 'JwksTooLarge';
  }
}

/**
 * jose's fetch with a bound on the answer's size: a transmitter's JWKS is read as a stream and
 * dropped past {@link SIGNAL_LIMITS.maxJwksBytes}, so a hostile or broken endpoint cannot make
 * the broker buffer an unbounded body. (jose bounds the time: `timeoutDuration`.)
 */
export const boundedFetch: FetchImplementation = async (url, options) => {
  const response = await fetch(url, options);
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > SIGNAL_LIMITS.maxJwksBytes) {
    await response.body?.cancel();
    throw new JwksTooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body?.getReader();
  for (;;) {
    const part = reader ? await reader.read() : { done: true as const, value: undefined };
    if (part.done) break;
    size += part.value.byteLength;
    if (size > SIGNAL_LIMITS.maxJwksBytes) {
      await reader?.cancel();
      throw new JwksTooLarge();
    }
    chunks.push(part.value);
  }
  // Only the type goes along: the body was decoded already, the original length may not fit it.
  return new Response(Buffer.concat(chunks), {
    status: response.status,
    headers: { 'content-type': response.headers.get('content-type') ?? 'application/json' },
  });
};

/**
 * Key resolvers per transmitter, so a remote JWKS is fetched once and reused: jose keeps it for
 * ten minutes and refetches, at most every 30 s, when a SET names a key it does not hold (a
 * rotation is picked up; a flood of unknown `kid`s costs one fetch per cooldown). An entry is
 * replaced when the registration's key source changes; the oldest goes when the cache is full.
 */
export class TransmitterKeys {
  readonly #entries = new Map<string, { source: string; keys: JWTVerifyGetKey }>();
  readonly #capacity: number;

  constructor(capacity = 256) {
    this.#capacity = capacity;
  }

  keysFor(t: Pick<SignalTransmitter, 'id' | 'jwksUri' | 'jwks'>): JWTVerifyGetKey {
    const source = t.jwksUri ?? JSON.stringify(t.jwks);
    const cached = this.#entries.get(t.id);
    if (cached && cached.source === source) return cached.keys;
    const keys = t.jwksUri
      ? createRemoteJWKSet(new URL(t.jwksUri), {
          timeoutDuration: SIGNAL_LIMITS.jwksTimeoutMs,
          cooldownDuration: 30_000,
          cacheMaxAge: 10 * 60_000,
          [customFetch]: boundedFetch,
        })
      : createLocalJWKSet((t.jwks ?? { keys: [] }) as JSONWebKeySet);
    this.#entries.delete(t.id);
    if (this.#entries.size >= this.#capacity) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(t.id, { source, keys });
    return keys;
  }

  forget(id: string): void {
    this.#entries.delete(id);
  }
}

const caches = new WeakMap<object, TransmitterKeys>();

/** The transmitter key cache of one broker (keyed by its context object: brokers never share one). */
export function transmitterKeysOf(owner: object): TransmitterKeys {
  let cache = caches.get(owner);
  if (!cache) {
    cache = new TransmitterKeys();
    caches.set(owner, cache);
  }
  return cache;
}
