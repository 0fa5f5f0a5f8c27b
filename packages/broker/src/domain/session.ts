import { TetherError } from '@tether/protocol';
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
] as const;
export type EndReason = (typeof END_REASONS)[number];

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
  lastActivityAt: number;
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
