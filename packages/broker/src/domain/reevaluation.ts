import type { EndReason, SessionGrant } from './session.js';

/**
 * Continuous evaluation, the pure part: what set a re-evaluation off, what it concluded for
 * one session, and the job that walks the sessions a change touches.
 */

/**
 * The change that made live sessions worth asking about again. Recorded as is (snake_case)
 * with every session it narrows or ends.
 */
export type ReevaluationTrigger =
  | { kind: 'policy_replaced'; version: number; by: string }
  | { kind: 'principal_changed'; principal: string; by: string }
  | { kind: 'group_changed'; group: string; principal?: string; by: string }
  | { kind: 'privilege_changed'; privilege: string; by: string }
  | { kind: 'ticket_changed'; ticket: string; source?: string; event?: string; by?: string }
  | { kind: 'signal'; jti: string; event_type: string; issuer: string; transmitter: string }
  | { kind: 'activation' }
  | { kind: 'refresh' };

/** What a session's re-evaluation concluded. */
export type Verdict =
  | { outcome: 'keep' }
  | {
      outcome: 'narrow';
      /** What the session keeps. */
      grant: SessionGrant;
      /** Why it lost the rest: `privilege_changed`, `policy_changed` or `trust_changed`. */
      reason: EndReason;
      why: string;
      /** The policies that forbade what was removed. */
      policies: string[];
    }
  | { outcome: 'end'; reason: EndReason; why: string; policies: string[] };

/** A re-evaluation job: the live sessions of a tenant that `selector` picks, walked in id order. */
export interface ReevaluationJob {
  id: string;
  tenantId: string;
  selector: {
    principalId?: string;
    privilegeId?: string;
    ticket?: string;
    sessionId?: string;
  };
  trigger: ReevaluationTrigger;
  state: 'pending' | 'done';
  /** The last session id processed; '' before the first batch. */
  cursor: string;
  processed: number;
  narrowed: number;
  ended: number;
  createdAt: number;
  finishedAt: number | null;
}

/** What `continue` forbade an action for: the policy alone, or the trust context signals built. */
export type ForbiddenBy = 'policy' | 'trust';

export function reasonOf(cause: ForbiddenBy): EndReason {
  return cause === 'trust' ? 'trust_changed' : 'policy_changed';
}
