import type { Static } from '@sinclair/typebox';
import type {
  AuditRecordView,
  AuditVerificationView,
  GroupView,
  KeyView,
  PolicySetView,
  PrincipalView,
  PrivilegeView,
  RequestView,
  ReviewView,
  SessionView,
  TenantView,
} from '@tether-broker/protocol/api';
import type { AuditRecord } from '../audit/chain.js';
import type { ChainVerification } from '../audit/verify.js';
import type { Group, Principal, PrincipalKey, Tenant } from '../domain/principal.js';
import type { Privilege } from '../domain/privilege.js';
import type { AccessRequest, Review } from '../domain/request.js';
import type { Session } from '../domain/session.js';
import type { PolicyVersion } from '../store/repositories/policies.js';
import { PRIVILEGE_DETAIL_TYPE, statusListUri } from '../tokens/access-token.js';

/** Domain objects become API answers here, and only here: snake_case, ISO times. */
const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

export function tenantView(t: Tenant): Static<typeof TenantView> {
  return {
    id: t.id,
    name: t.name,
    display_name: t.displayName,
    time_zone: t.timeZone,
    created_at: iso(t.createdAt),
    kind: t.kind,
  };
}

export function keyView(k: PrincipalKey): Static<typeof KeyView> {
  return { kid: k.kid, jwk: k.publicJwk, created_at: iso(k.createdAt) };
}

export function principalView(p: Principal, keys?: PrincipalKey[]): Static<typeof PrincipalView> {
  return {
    id: p.id,
    name: p.name,
    kind: p.kind,
    enabled: p.enabled,
    roles: p.roles,
    attributes: p.attributes,
    created_at: iso(p.createdAt),
    updated_at: iso(p.updatedAt),
    ...(p.contract
      ? { contract: { starts_at: isoOrNull(p.contract.startsAt), ends_at: isoOrNull(p.contract.endsAt) } }
      : {}),
    ...(keys ? { keys: keys.map(keyView) } : {}),
  };
}

export function groupView(g: Group, members?: string[]): Static<typeof GroupView> {
  return {
    id: g.id,
    name: g.name,
    description: g.description,
    created_at: iso(g.createdAt),
    ...(members ? { members } : {}),
  };
}

export function privilegeView(p: Privilege): Static<typeof PrivilegeView> {
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    actions: p.actions,
    resources: p.resources,
    audiences: p.audiences,
    max_duration: p.maxDurationSeconds,
    token_ttl: p.tokenTtlSeconds,
    idle_timeout: p.idleTimeoutSeconds,
    approval: {
      approvals: p.approval.approvals,
      approvers: p.approval.approvers,
      ...(p.approval.freshVerificationSeconds === undefined
        ? {}
        : { fresh_verification: p.approval.freshVerificationSeconds }),
    },
    ticket: p.ticket,
    binding: p.binding,
    attributes: p.attributes,
    connectors: p.connectors,
    recording: p.recording,
    created_at: iso(p.createdAt),
    updated_at: iso(p.updatedAt),
  };
}

export function policySetView(v: PolicyVersion): Static<typeof PolicySetView> {
  return {
    version: v.version,
    policies: v.policies,
    created_by: v.createdBy,
    created_at: v.createdAt ? iso(v.createdAt) : null,
  };
}

function reviewView(r: Review): Static<typeof ReviewView> {
  return {
    reviewer: r.reviewerId,
    decision: r.decision,
    comment: r.comment,
    policies: r.policies,
    at: iso(r.createdAt),
  };
}

export function requestView(r: AccessRequest, reviews?: Review[]): Static<typeof RequestView> {
  return {
    id: r.id,
    kind: r.kind,
    session: r.sessionId,
    principal: r.principalId,
    privilege: r.privilegeId,
    ticket: r.ticket,
    justification: r.justification,
    duration: r.durationSeconds,
    state: r.state,
    approvals_required: r.approvalsRequired,
    created_at: iso(r.createdAt),
    expires_at: iso(r.expiresAt),
    resolved_at: isoOrNull(r.resolvedAt),
    resolved_by: r.resolvedBy,
    activation_expires_at: isoOrNull(r.activationExpiresAt),
    policies: r.policies,
    ...(reviews ? { reviews: reviews.map(reviewView) } : {}),
  };
}

export function auditRecordView(r: AuditRecord): Static<typeof AuditRecordView> {
  return {
    seq: r.seq,
    id: r.id,
    at: iso(r.at),
    actor: r.actor,
    action: r.action,
    target: r.target,
    outcome: r.outcome,
    request: r.requestId,
    ticket: r.ticket,
    principal: r.principalId,
    policies: r.policies,
    details: r.details,
    prev_hash: r.prevHash,
    hash: r.hash,
  };
}

export function auditVerificationView(v: ChainVerification): Static<typeof AuditVerificationView> {
  return { ok: v.ok, checked: v.checked, ...(v.firstBad ? { first_bad: v.firstBad } : {}) };
}

export function sessionView(s: Session, issuer: string): Static<typeof SessionView> {
  return {
    id: s.id,
    request: s.requestId,
    principal: s.principalId,
    privilege: s.privilegeId,
    ticket: s.ticket,
    tenant: s.tenantId,
    cnf: { jkt: s.jkt },
    state: s.state,
    end_reason: s.endReason,
    ended_by: s.endedBy,
    activated_at: iso(s.activatedAt),
    hard_expires_at: iso(s.hardExpiresAt),
    ended_at: isoOrNull(s.endedAt),
    last_activity_at: iso(s.lastActivityAt),
    idle_timeout: s.idleTimeoutSeconds,
    authorization_details: [
      {
        type: PRIVILEGE_DETAIL_TYPE,
        privilege: s.grant.privilege,
        actions: s.grant.actions,
        resources: s.grant.resources,
      },
    ],
    audiences: s.grant.audiences,
    status: { status_list: { idx: s.statusIdx, uri: statusListUri(issuer, s.statusListId) } },
    ...(s.delegation === null
      ? {}
      : {
          delegation: {
            parent: s.delegation.parentSessionId,
            depth: s.delegation.depth,
            act: s.delegation.act,
            call_budget: s.delegation.callBudget,
            calls_made: s.delegation.callsMade,
          },
        }),
  };
}
