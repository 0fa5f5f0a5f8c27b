import { TetherError } from '@tether-broker/protocol';
import type { Logger } from 'pino';
import type { BrokerConfig } from '../config/config.js';
import type { Clock } from '../domain/clock.js';
import { KeySets } from './key-sets.js';
import { OutboundClient } from './outbound.js';

type OutboundConfig = Pick<
  BrokerConfig,
  'outboundAllowHosts' | 'outboundAllowHttp' | 'outboundMaxResponseBytes' | 'outboundTimeoutMs'
>;

const clients = new WeakMap<object, OutboundClient>();
const keySets = new WeakMap<object, KeySets>();

/** The outbound client of one broker, built from its settings (keyed by its context: brokers never share one). */
export function outboundOf(owner: { config: OutboundConfig }): OutboundClient {
  let client = clients.get(owner);
  if (!client) {
    client = new OutboundClient({
      allowHosts: owner.config.outboundAllowHosts,
      allowHttp: owner.config.outboundAllowHttp,
      maxResponseBytes: owner.config.outboundMaxResponseBytes,
      timeoutMs: owner.config.outboundTimeoutMs,
    });
    clients.set(owner, client);
  }
  return client;
}

/**
 * Gives a broker its own outbound client, e.g. one with a resolver of its own (split-horizon
 * DNS, or a test's). Every rule of the client still applies. Call it before the first fetch.
 */
export function useOutbound(owner: object, client: OutboundClient): void {
  clients.set(owner, client);
  keySets.delete(owner);
}

/**
 * The JWKS cache of one broker, for trust records and signal transmitters alike (their ids
 * never collide), fetching through its outbound client on its clock.
 */
export function keySetsOf(owner: { config: OutboundConfig; clock: Clock; logger?: Logger }): KeySets {
  let cache = keySets.get(owner);
  if (!cache) {
    cache = new KeySets({ outbound: outboundOf(owner), now: () => owner.clock.now(), logger: owner.logger });
    keySets.set(owner, cache);
  }
  return cache;
}

/**
 * Refuses, when it is given, a URL the broker would not call: what can be told without any
 * network traffic (scheme, a loopback or private address literal, `localhost`). A name that
 * resolves to such an address is refused when it is called.
 */
export function assertDestination(
  owner: { config: OutboundConfig },
  field: string,
  url: string | null,
): void {
  if (url === null) return;
  const refusal = outboundOf(owner).refusalOf(url);
  if (refusal !== undefined) throw new TetherError('destination_refused', `${field} ${refusal}`);
}
