import type { DecisionRecord, DecisionReportAnswer } from '@tether-broker/protocol';
import type { BrokerClient } from '../../packages/client/src/index.js';
import { BrokerLink } from '../../packages/pep/src/index.js';
import { type Actor, injectFetch, PUBLIC_URL, type TestBroker } from './broker.js';

/**
 * The channel a real PEP process uses to reach the broker (packages/pep BrokerLink): a
 * DPoP-bound token and a proof by the PEP's own registered key on every call, a fresh
 * instance id per link. Driven by inject, on the test broker's clock.
 */
export function pepLink(b: Pick<TestBroker, 'app' | 'clock'>, pep: Actor): BrokerLink {
  return new BrokerLink({
    broker: PUBLIC_URL,
    issuer: PUBLIC_URL,
    identity: { principal: pep.identity.principal, key: pep.identity.key },
    fetch: injectFetch(b.app),
    now: () => b.clock.now(),
  });
}

/** Reports a batch of decisions for `audience` over a PEP's link. */
export function reportOver(
  link: BrokerLink,
  audience: string,
  decisions: DecisionRecord[],
  dropped = 0,
): Promise<DecisionReportAnswer> {
  return link.postJson('/v1/decisions', { audience, decisions, dropped }) as Promise<DecisionReportAnswer>;
}

/** An admin sets the audiences a PEP principal enforces. */
export function setPepAudiences(admin: BrokerClient, pep: Actor, audiences: string[]): Promise<unknown> {
  return admin.call('PUT', `/v1/peps/${pep.caller.principal.id}/audiences`, { audiences });
}
