import type { Logger } from 'pino';
import type { BrokerConfig } from '../config/config.js';
import type { Clock } from '../domain/clock.js';
import { keySetsOf } from '../net/client.js';
import type { KeySets } from '../net/key-sets.js';

/**
 * Transmitter keys share the broker's one JWKS cache with trust records (`net/key-sets.ts`):
 * fetched through the outbound client (size and time caps, no private destinations), at most
 * once per window per transmitter whether the fetch works or not.
 */
export type TransmitterKeys = KeySets;

/** The transmitter key cache of one broker (keyed by its context object: brokers never share one). */
export function transmitterKeysOf(owner: {
  config: BrokerConfig;
  clock: Clock;
  logger?: Logger;
}): TransmitterKeys {
  return keySetsOf(owner);
}
