import { TetherError } from '@tether-broker/protocol';
import { actionWithin, resourceWithin } from './grant-patterns.js';
import type { Privilege } from './privilege.js';
import type { AccessRequest } from './request.js';

/** Why a session ended. Stable strings: they are recorded and reported. */
export const END_REASONS = [
  'completed',
  'revoked',
  'expired',
  'refresh_reuse',
  'principal_disabled',
  'privilege_deleted',
  'privilege_changed',
  'policy_changed',
  'ticket_closed',
  'trust_changed',
  'idle',
  'tenant_cutoff',
  'recording_lapsed',
  // The principal's contract window ended (or was moved so that it no longer covers now).
  'contract_ended',
  // The provider relationship it was made under ended, was narrowed past it, or its window closed.
  'relationship_ended',
  // A sub-session's own ends: its parent ended, or it used up its call budget.
  'parent_ended',
  'budget_exhausted',
] as const;
export type EndReason = (typeof END_REASONS)[number];

/** RFC 8693 §4.1: the current actor, and before it the actors it acts for, outermost first. */
export interface ActClaim {
  sub: string;
  act?: ActClaim;
}

/** What a sub-session carries besides its grant. */
export interface Delegation {
  parentSessionId: string;
  /** 1 for a child of a session of its own, 2 for a grandchild, … */
  depth: number;
  act: ActClaim;
  /** Allowed calls per action (as requested: an action of the grant); null for no budget. */
  callBudget: Record<string, number> | null;
  /** Allowed calls the PEPs reported so far, per budgeted action. */
  callsMade: Record<string, number>;
}

/** What the session holds: a snapshot of the privilege's grant at activation. */
export interface SessionGrant {
  privilege: string; // privilege name, as in authorization_details
  actions: string[];
  resources: string[];
  audiences: string[];
  tokenTtlSeconds: number;
}

export interface Session {
  id: string;
  tenantId: string;
  requestId: string;
  principalId: string;
  privilegeId: string;
  ticket: string | null;
  /** RFC 7638 thumbprint of the holder's DPoP key: every token of the session is bound to it. */
  jkt: string;
  state: 'active' | 'ended';
  endReason: EndReason | null;
  endedBy: string | null;
  activatedAt: number;
  hardExpiresAt: number;
  endedAt: number | null;
  statusListId: number;
  statusIdx: number;
  grant: SessionGrant;
  /** Epoch ms of the last activity: activation, a refresh, an allowed decision a PEP reported. */
  lastActivityAt: number;
  /**
   * Seconds without activity after which the session ends (`idle`), copied from the privilege
   * at activation; null for none. See domain/idle.ts.
   */
  idleTimeoutSeconds: number | null;
  /**
   * Epoch seconds, set when the grant was narrowed: PEPs refuse the session's tokens issued
   * (`iat`) before it, and every later token carries an `iat` of at least it. Null if never narrowed.
   */
  narrowedBefore: number | null;
  /** Set for a delegated sub-session: its parent, depth, actor and call budget. */
  delegation: Delegation | null;
  /** Made under this provider relationship (a seat's session, or a sub-session of one); absent otherwise. */
  relationshipId?: string | undefined;
}

export function grantOf(privilege: Privilege): SessionGrant {
  return {
    privilege: privilege.name,
    actions: [...privilege.actions],
    resources: [...privilege.resources],
    audiences: [...privilege.audiences],
    tokenTtlSeconds: privilege.tokenTtlSeconds,
  };
}

/**
 * The session clock starts at activation: it lasts the requested duration, never longer than
 * the privilege allows now.
 */
export function hardExpiry(request: AccessRequest, privilege: Privilege, activatedAt: number): number {
  return activatedAt + Math.min(request.durationSeconds, privilege.maxDurationSeconds) * 1000;
}

/** Only the requester, only an approved request, only inside its activation window. */
export function assertActivatable(request: AccessRequest, principalId: string, now: number): void {
  if (request.kind !== 'access') {
    throw new TetherError(
      'invalid_request',
      request.kind === 'extension'
        ? `request ${request.id} extends session ${request.sessionId}; there is no new session to activate`
        : `request ${request.id} delegated a sub-session of ${request.sessionId}; it started as it was made`,
    );
  }
  if (request.principalId !== principalId) {
    throw new TetherError('not_requester', 'only the principal who made the request may activate it');
  }
  if (request.state !== 'approved') {
    throw new TetherError('request_not_approved', `request ${request.id} is ${request.state}, not approved`);
  }
  if (request.activationExpiresAt === null || now >= request.activationExpiresAt) {
    throw new TetherError(
      'activation_window_closed',
      `request ${request.id} could be activated until ${new Date(request.activationExpiresAt ?? 0).toISOString()}`,
    );
  }
}

/** A session is live when it has not ended and its hard expiry has not passed. */
export function isLive(session: Pick<Session, 'state' | 'hardExpiresAt'>, now: number): boolean {
  return session.state === 'active' && now < session.hardExpiresAt;
}

export function ended(session: Session, now: number, reason: EndReason, by: string | null): Session {
  return {
    ...session,
    state: 'ended',
    endReason: reason,
    endedBy: by,
    endedAt: Math.min(now, session.hardExpiresAt),
  };
}

/** Access-token expiry: the privilege's TTL from now, never past the session's hard expiry. */
export function accessTokenExpiry(session: Pick<Session, 'hardExpiresAt' | 'grant'>, now: number): number {
  return Math.min(now + session.grant.tokenTtlSeconds * 1000, session.hardExpiresAt);
}

/**
 * What a session may keep of its grant under the privilege as it stands now: the actions and
 * resources the privilege still covers (a sub-session holds narrower patterns than its
 * privilege; a privilege whose `app/*` became `app/web` no longer covers `app/*`, so that
 * resource goes), and the audiences it still names.
 */
export function grantWithin(
  grant: SessionGrant,
  privilege: Pick<Privilege, 'actions' | 'resources' | 'audiences'>,
): SessionGrant {
  return {
    ...grant,
    actions: grant.actions.filter((a) => privilege.actions.some((held) => actionWithin(a, held))),
    resources: grant.resources.filter((r) => privilege.resources.some((held) => resourceWithin(r, held))),
    audiences: grant.audiences.filter((a) => privilege.audiences.includes(a)),
  };
}

/** Whether a grant holds nothing usable: no action, no resource or no audience left. */
export function isEmptyGrant(grant: SessionGrant): boolean {
  return grant.actions.length === 0 || grant.resources.length === 0 || grant.audiences.length === 0;
}

/** Whether `narrower` holds less than `grant` (it never holds more: it is cut from it). */
export function isNarrower(narrower: SessionGrant, grant: SessionGrant): boolean {
  return (
    narrower.actions.length < grant.actions.length ||
    narrower.resources.length < grant.resources.length ||
    narrower.audiences.length < grant.audiences.length
  );
}

/**
 * The `before` (epoch seconds) of a narrowing decided at `at` (epoch ms): the second after
 * `at`, so every token issued up to `at` has a smaller `iat`; and past the previous cutoff,
 * because tokens issued since then carry an `iat` of at least that one.
 */
export function narrowingCutoff(at: number, previous: number | null): number {
  return Math.max(Math.floor(at / 1000) + 1, (previous ?? 0) + 1);
}

/** A narrowed session: the grant it keeps and the cutoff its older tokens fall under. */
export function narrowed(session: Session, grant: SessionGrant, at: number): Session {
  return { ...session, grant, narrowedBefore: narrowingCutoff(at, session.narrowedBefore) };
}

/** The `iat` of a token issued at `now` (epoch ms): never below the session's narrowing cutoff. */
export function tokenIssuedAt(session: Pick<Session, 'narrowedBefore'>, now: number): number {
  return Math.max(Math.floor(now / 1000), session.narrowedBefore ?? 0);
}
