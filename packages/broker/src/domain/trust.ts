/**
 * The trust context that CAEP signals build up: per principal, and per session when a signal
 * named one. Pure: reading and writing it is the store's business.
 */

/** A reported fact and when the event that reported it happened (epoch ms). */
export interface TrustFact<T> {
  value: T;
  at: number;
}

export interface TrustContext {
  deviceCompliance?: TrustFact<string>;
  assuranceLevel?: TrustFact<string>;
  riskLevel?: TrustFact<string>;
  /** When a credential of the principal last changed (epoch ms). */
  credentialChangedAt?: number;
  claims?: TrustFact<Record<string, string>>;
}

/** One signal's contribution: the facts it reports, all dated by the event. */
export type TrustUpdate = TrustContext;

/** What signals reported about the principal and session (`context.trust`, for `continue`). */
export interface TrustFacts {
  /** compliant | not-compliant | unknown */
  deviceCompliance: string;
  /** The identity provider's level, or unknown. */
  assuranceLevel: string;
  /** low | medium | high | unknown */
  riskLevel: string;
  /** A credential of the principal changed after the session started. */
  credentialChanged: boolean;
  /** The latest token-claims-change, as `name=value` entries. */
  claims: string[];
}

const FACTS = ['deviceCompliance', 'assuranceLevel', 'riskLevel', 'claims'] as const;

/**
 * Applies an update: a fact is replaced only by one at least as recent, so a delivery that
 * arrives late cannot undo a newer report. Answers the result and whether anything changed.
 */
export function applyTrustUpdate(
  current: TrustContext,
  update: TrustUpdate,
): { next: TrustContext; changed: boolean } {
  const next: TrustContext = { ...current };
  let changed = false;
  for (const name of FACTS) {
    const incoming = update[name] as TrustFact<never> | undefined;
    const held = current[name];
    if (incoming === undefined || (held !== undefined && held.at > incoming.at)) continue;
    (next as Record<string, unknown>)[name] = incoming;
    changed ||= held === undefined || JSON.stringify(held.value) !== JSON.stringify(incoming.value);
  }
  const credential = update.credentialChangedAt;
  if (credential !== undefined && credential > (current.credentialChangedAt ?? -1)) {
    next.credentialChangedAt = credential;
    changed = true;
  }
  return { next, changed };
}

/** A session's context: the principal's, with what signals said of the session itself on top when newer. */
export function sessionTrust(principal: TrustContext, session: TrustContext): TrustContext {
  return applyTrustUpdate(principal, session).next;
}

/** The trust context as Cedar sees it (`context.trust`), for a session activated at `activatedAt`. */
export function trustFacts(trust: TrustContext, activatedAt: number): TrustFacts {
  return {
    deviceCompliance: trust.deviceCompliance?.value ?? 'unknown',
    assuranceLevel: trust.assuranceLevel?.value ?? 'unknown',
    riskLevel: trust.riskLevel?.value ?? 'unknown',
    credentialChanged: trust.credentialChangedAt !== undefined && trust.credentialChangedAt > activatedAt,
    claims: Object.entries(trust.claims?.value ?? {})
      .map(([name, value]) => `${name}=${value}`)
      .sort(),
  };
}
