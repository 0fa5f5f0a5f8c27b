import { TetherError } from '@tether-broker/protocol';
import type { Kek } from '../config/key-encryption.js';
import { principalFacts, relationshipFacts } from '../core/policy-facts.js';
import { readRelationship } from '../core/relationship-trust.js';
import { ticketFactsOf, ticketStanding } from '../core/ticket-facts.js';
import type { Principal } from '../domain/principal.js';
import type { Privilege } from '../domain/privilege.js';
import { namesOperatorGroup, relationshipUsableAt } from '../domain/relationship.js';
import type { AccessRequest } from '../domain/request.js';
import type { Session } from '../domain/session.js';
import { sessionTrust, trustFacts } from '../domain/trust.js';
import {
  CONTINUE_BASELINE,
  type DecisionInput,
  type PolicyTexts,
  type PrincipalFacts,
  type RelationshipFacts,
  type TicketFacts,
  type TrustFacts,
} from '../policy/cedar.js';
import type { StoreHandle } from '../store/database.js';
import { findFederatedRequest, findFederatedRequestsByIds } from '../store/repositories/federations.js';
import { groupIdsOf } from '../store/repositories/groups.js';
import { currentPolicyVersion } from '../store/repositories/policies.js';
import { findPrincipal } from '../store/repositories/principals.js';
import { findPrivilege } from '../store/repositories/privileges.js';
import { findRequest, findRequestsByIds } from '../store/repositories/requests.js';
import { findSessionById } from '../store/repositories/sessions.js';
import { findTenantById } from '../store/repositories/tenants.js';
import { findSessionsTrust, findTrust } from '../store/repositories/trust.js';

/** A tenant's current policy set and the engine's cache key for that version. */
export interface PolicySetFacts {
  cacheKey: string;
  policies: PolicyTexts;
  /** The set with Tether's baseline `continue` permit added (cached under `${cacheKey}+continue`). */
  continuePolicies: PolicyTexts;
  /**
   * Whether some policy may read `context.entitlement_resource`, so that `continue` must also be
   * asked about each resource of a grant. No policy can read it without naming it, or spelling
   * its name with a `\u` escape in an index (`context["…"]`); a set that does neither decides
   * every resource as it decides the action alone, and is not asked again.
   */
  asksResources: boolean;
}

/**
 * What a session made under a provider relationship stands on: `none` for any other session;
 * `stands` with what Cedar sees of it; `lost` when it no longer does (ended, past its window,
 * no longer naming the privilege or the operator's groups, or a row whose seal does not open).
 */
export type RelationshipStanding =
  | { outcome: 'none' }
  | { outcome: 'stands'; facts: RelationshipFacts }
  | { outcome: 'lost'; why: string; reason: 'relationship_ended' | 'principal_disabled' };

/**
 * The records a re-evaluation reads, each read once per batch: a thousand sessions of one
 * privilege cost one privilege lookup, not a thousand. Lives for one transaction only, so
 * what it remembers is what that transaction sees.
 */
export class EvaluationFacts {
  readonly #h: StoreHandle;
  readonly #memo = new Map<string, Promise<unknown>>();

  constructor(h: StoreHandle) {
    this.#h = h;
  }

  #once<T>(key: string, read: () => Promise<T>): Promise<T> {
    let found = this.#memo.get(key) as Promise<T> | undefined;
    if (!found) {
      found = read();
      this.#memo.set(key, found);
    }
    return found;
  }

  /**
   * Reads what a page of sessions needs (their requests, federated requests and session trust)
   * in three statements instead of three per session.
   */
  async prefetch(tenantId: string, sessions: readonly Session[]): Promise<void> {
    const requestIds = sessions.map((s) => s.requestId);
    const sessionIds = sessions.map((s) => s.id);
    const requests = new Map((await findRequestsByIds(this.#h, tenantId, requestIds)).map((r) => [r.id, r]));
    const federated = new Map(
      (await findFederatedRequestsByIds(this.#h, requestIds)).map((f) => [f.requestId, f]),
    );
    const trust = await findSessionsTrust(this.#h, tenantId, sessionIds);
    for (const id of requestIds) {
      this.#memo.set(`request:${id}`, Promise.resolve(requests.get(id)));
      this.#memo.set(`federated:${id}`, Promise.resolve(federated.get(id)));
    }
    for (const id of sessionIds) this.#memo.set(`session-trust:${id}`, Promise.resolve(trust.get(id) ?? {}));
  }

  principal(tenantId: string, id: string): Promise<Principal | undefined> {
    return this.#once(`principal:${id}`, () => findPrincipal(this.#h, tenantId, id));
  }

  privilege(tenantId: string, id: string): Promise<Privilege | undefined> {
    return this.#once(`privilege:${id}`, () => findPrivilege(this.#h, tenantId, id));
  }

  policySet(tenantId: string): Promise<PolicySetFacts> {
    return this.#once(`policy:${tenantId}`, async () => {
      const current = await currentPolicyVersion(this.#h, tenantId);
      const policies = current?.policies ?? {};
      return {
        cacheKey: `${tenantId}:${current?.version ?? 0}`,
        policies,
        continuePolicies: { ...policies, ...CONTINUE_BASELINE },
        asksResources: Object.values(policies).some(
          (text) => text.includes('entitlement_resource') || text.includes('\\u'),
        ),
      };
    });
  }

  /** The facts of a session that Cedar sees, as `request` sees them; `action` is set by the caller. */
  async decisionInput(
    session: Session,
    principal: Principal,
    privilege: Privilege,
    at: number,
  ): Promise<DecisionInput> {
    // A sub-session is judged on what its root session was decided on (ticket, duration, reason,
    // a workload's claims): only its grant, already within its parent's, is its own.
    const requestId = await this.#rootRequestId(session);
    const [request, tenant, facts] = await Promise.all([
      this.#once(`request:${requestId}`, () => findRequest(this.#h, session.tenantId, requestId)),
      this.#once(`tenant:${session.tenantId}`, () => findTenantById(this.#h, session.tenantId)),
      this.#principalFacts(principal, requestId),
    ]);
    if (!request || !tenant)
      throw new TetherError('internal_error', 'a session without its request or tenant');
    const ticketInfo = await this.#ticket(session, principal);
    return {
      action: 'request',
      principal: facts,
      requester: facts,
      privilege: { id: privilege.id, name: privilege.name, attributes: privilege.attributes },
      ...(session.ticket === null ? {} : { ticket: session.ticket }),
      ...(ticketInfo ? { ticketInfo } : {}),
      durationSeconds: (request as AccessRequest).durationSeconds,
      reason: (request as AccessRequest).justification,
      at,
      timeZone: tenant.timeZone,
    };
  }

  /**
   * The standing of the relationship a session (or, for a sub-session, its root session) was
   * made under. Ending a relationship ends its sessions in the same transaction; this catches
   * what changes without that step: the operator leaving the groups it names (in the provider
   * tenant), its window closing before the sweeper runs, a row changed behind the broker's back.
   */
  async relationshipStanding(
    kek: Kek,
    session: Session,
    principal: Principal,
    at: number,
  ): Promise<RelationshipStanding> {
    const root = await this.#root(session);
    const id = root.relationshipId;
    if (id === undefined) return { outcome: 'none' };
    const read = await this.#once(`relationship:${id}`, () =>
      readRelationship(this.#h, kek, session.tenantId, id).catch((err: unknown) => {
        if (err instanceof TetherError && err.code === 'relationship_tampered') return 'tampered' as const;
        throw err;
      }),
    );
    const lost = (why: string, reason: 'relationship_ended' | 'principal_disabled' = 'relationship_ended') =>
      ({ outcome: 'lost', why, reason }) as const;
    if (read === 'tampered') return lost("the relationship's record does not verify");
    if (!read || !relationshipUsableAt(read, at)) return lost('the relationship it was made under has ended');
    if (!read.privilegeIds.includes(root.privilegeId))
      return lost('the relationship no longer names the privilege');
    const operator =
      root.principalId === principal.id ? principal : await this.principal(root.tenantId, root.principalId);
    const home = operator?.home;
    if (!operator || !home) return lost('the session under the relationship has no operator');
    const atHome = await this.principal(home.tenantId, home.principalId);
    if (!atHome?.enabled)
      return lost('the operator is disabled in the provider tenant', 'principal_disabled');
    const groups = await this.#once(`home-groups:${home.principalId}`, () =>
      groupIdsOf(this.#h, home.tenantId, home.principalId),
    );
    if (!namesOperatorGroup(read, new Set(groups)))
      return lost('the operator is no longer in a group the relationship names');
    return {
      outcome: 'stands',
      facts: await this.#once(`relationship-facts:${id}:${operator.id}`, () =>
        relationshipFacts(this.#h, read, operator),
      ),
    };
  }

  /** A session as this transaction sees it (a sub-session's parent). */
  session(id: string): Promise<Session | undefined> {
    return this.#once(`session:${id}`, () => findSessionById(this.#h, id));
  }

  /** The request a session stands on: its own, or for a sub-session its root session's. */
  async #rootRequestId(session: Session): Promise<string> {
    return (await this.#root(session)).requestId;
  }

  /** The session itself, or for a sub-session the root session it was delegated from. */
  async #root(session: Session): Promise<Session> {
    let current = session;
    // Nesting is bounded by limits.delegationDepth (at most 8); the bound only guards the loop.
    for (let i = 0; current.delegation !== null && i < 16; i++) {
      const parent = await this.session(current.delegation.parentSessionId);
      if (!parent) break;
      current = parent;
    }
    return current;
  }

  /** The session's trust context: its principal's, with what signals said of the session on top. */
  async trust(session: Session): Promise<TrustFacts> {
    const [own, ofSession] = await Promise.all([
      this.#once(`trust:${session.principalId}`, () =>
        findTrust(this.#h, session.tenantId, session.principalId, null),
      ),
      this.#once(`session-trust:${session.id}`, () =>
        findTrust(this.#h, session.tenantId, session.principalId, session.id),
      ),
    ]);
    return trustFacts(sessionTrust(own, ofSession), session.activatedAt);
  }

  /**
   * A federated session is judged with the token claims its request was decided on; those
   * tags never replace the principal's own attributes.
   */
  async #principalFacts(principal: Principal, requestId: string): Promise<PrincipalFacts> {
    const own = await this.#once(`facts:${principal.id}`, () => principalFacts(this.#h, principal));
    const federated = await this.#once(`federated:${requestId}`, () =>
      findFederatedRequest(this.#h, requestId),
    );
    if (!federated) return own;
    return { ...own, attributes: { ...federated.principalTags, ...own.attributes } };
  }

  #ticket(session: Session, principal: Principal): Promise<TicketFacts | undefined> {
    const ref = session.ticket;
    if (ref === null) return Promise.resolve(undefined);
    return this.#once(`ticket:${ref}:${principal.id}`, async () =>
      ticketFactsOf(await ticketStanding(this.#h, session.tenantId, ref, principal)),
    );
  }
}
