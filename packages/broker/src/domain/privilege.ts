import { TetherError } from '@tether/protocol';

/** How many distinct approvers a request needs, and who they may be. */
export interface ApprovalRule {
  /** Distinct approvals needed (1–10). Only a Cedar `auto_approve` permit skips review. */
  approvals: number;
  /** If either list is non-empty, an approver must be named here or be in one of the groups. */
  approvers: { principals: string[]; groups: string[] };
}

/** Whether a request must name a ticket, and its shape. */
export interface TicketRule {
  required: boolean;
  /** A regular expression the whole reference must match, e.g. `^(NET|CHG)-[0-9]+$`. */
  pattern?: string;
  /** The ticket must be in the register, reported by this source (a webhook's name). */
  source?: string;
  /** The ticket must be in the register and open. (A ticket known closed is refused anyway.) */
  open?: boolean;
  /**
   * The ticket must be in the register and assigned to the requester, matched through the
   * principal attribute that the ticket's source names (its `assignee_attribute`).
   */
  assigned?: boolean;
}

/** How the session's tokens are bound to the holder. DPoP is the only binding offered. */
export interface BindingRule {
  method: 'dpop';
}

export interface Privilege {
  id: string;
  tenantId: string;
  name: string;
  description: string;
  actions: string[];
  resources: string[];
  audiences: string[];
  maxDurationSeconds: number;
  tokenTtlSeconds: number;
  /**
   * Seconds a session may go without activity (activation, refresh, an allowed decision a PEP
   * reported) before it ends (`idle`); null for none. A session keeps the value it was activated
   * with: changing it here does not change the sessions already running.
   */
  idleTimeoutSeconds: number | null;
  approval: ApprovalRule;
  ticket: TicketRule;
  binding: BindingRule;
  attributes: Record<string, string>;
  createdAt: number;
  updatedAt: number;
}

export const PRIVILEGE_DEFAULTS = {
  maxDurationSeconds: 8 * 3600,
  tokenTtlSeconds: 300,
  approval: { approvals: 1, approvers: { principals: [], groups: [] } } satisfies ApprovalRule,
  ticket: { required: false } satisfies TicketRule,
  binding: { method: 'dpop' } satisfies BindingRule,
} as const;

/** The limits every privilege must respect, whatever its author asked for. */
export const PRIVILEGE_LIMITS = {
  maxDurationSeconds: 7 * 24 * 3600,
  minTokenTtlSeconds: 30,
  maxTokenTtlSeconds: 3600,
  maxApprovals: 10,
  minIdleTimeoutSeconds: 60,
} as const;

/** Checks the rules that a schema cannot express; throws `invalid_request` naming the field. */
export function assertPrivilegeIsCoherent(
  p: Pick<Privilege, 'maxDurationSeconds' | 'tokenTtlSeconds' | 'approval' | 'ticket'> &
    Partial<Pick<Privilege, 'idleTimeoutSeconds'>>,
): void {
  if (p.maxDurationSeconds < 60 || p.maxDurationSeconds > PRIVILEGE_LIMITS.maxDurationSeconds) {
    throw new TetherError(
      'invalid_request',
      `max_duration must be between 60 s and ${PRIVILEGE_LIMITS.maxDurationSeconds} s`,
    );
  }
  if (
    p.tokenTtlSeconds < PRIVILEGE_LIMITS.minTokenTtlSeconds ||
    p.tokenTtlSeconds > PRIVILEGE_LIMITS.maxTokenTtlSeconds
  ) {
    throw new TetherError(
      'invalid_request',
      `token_ttl must be between ${PRIVILEGE_LIMITS.minTokenTtlSeconds} s and ${PRIVILEGE_LIMITS.maxTokenTtlSeconds} s`,
    );
  }
  if (p.tokenTtlSeconds > p.maxDurationSeconds) {
    throw new TetherError('invalid_request', 'token_ttl may not exceed max_duration');
  }
  const idle = p.idleTimeoutSeconds ?? null;
  if (
    idle !== null &&
    (!Number.isInteger(idle) || idle < PRIVILEGE_LIMITS.minIdleTimeoutSeconds || idle > p.maxDurationSeconds)
  ) {
    throw new TetherError(
      'invalid_request',
      `idle_timeout must be between ${PRIVILEGE_LIMITS.minIdleTimeoutSeconds} s and max_duration (${p.maxDurationSeconds} s)`,
    );
  }
  if (
    !Number.isInteger(p.approval.approvals) ||
    p.approval.approvals < 1 ||
    p.approval.approvals > PRIVILEGE_LIMITS.maxApprovals
  ) {
    throw new TetherError(
      'invalid_request',
      `approval.approvals must be an integer from 1 to ${PRIVILEGE_LIMITS.maxApprovals}`,
    );
  }
  if (p.ticket.pattern !== undefined) compileTicketPattern(p.ticket.pattern);
}

/** Ticket patterns are anchored: the whole reference must match. */
export function compileTicketPattern(pattern: string): RegExp {
  let compiled: RegExp;
  try {
    // Alone first: a pattern that closes the wrapper's group (`a)|(?:b`) would otherwise compile
    // as `^(?:a)|(?:b)$`, anchored on one side only.
    new RegExp(pattern, 'u');
    compiled = new RegExp(`^(?:${pattern})$`, 'u');
  } catch {
    throw new TetherError('invalid_request', 'ticket.pattern is not a valid regular expression');
  }
  const unsafe = backtrackingHazard(pattern);
  if (unsafe) throw new TetherError('invalid_request', `ticket.pattern is refused: ${unsafe}`);
  return compiled;
}

/** Unbounded quantifiers a pattern may hold: k adjacent ones cost O(n^k) steps on a miss. */
const MAX_UNBOUNDED_QUANTIFIERS = 3;

/**
 * V8 matches by backtracking, and a requester chooses the ticket text: a pattern with nested
 * or ambiguous repetition could pin the event loop for every tenant. Ticket references are
 * simple (`CHG-[0-9]+`), so patterns are held to a shape that always matches in low
 * polynomial time: no backreferences or lookaround, no quantified group that contains a
 * quantifier or an alternation, and at most a few unbounded quantifiers. Returns the reason
 * a pattern is refused, or undefined.
 */
export function backtrackingHazard(pattern: string): string | undefined {
  if (/\\[1-9]|\\k</.test(pattern)) return 'backreferences are not allowed';
  if (/\(\?<?[=!]/.test(pattern)) return 'lookahead and lookbehind are not allowed';
  // Walk the pattern, tracking for each open group whether it holds a quantifier or `|`.
  const groups: { risky: boolean }[] = [];
  let unbounded = 0;
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      i += 1;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === '(') {
      groups.push({ risky: false });
      // `(?:`, `(?<name>`: the `?` opens a group kind, it is not a quantifier.
      if (pattern[i + 1] === '?') {
        const named = /^\(\?<[A-Za-z_][A-Za-z0-9_]*>/.exec(pattern.slice(i));
        i += named ? named[0].length - 1 : 2;
      }
    } else if (c === '|' && groups.length > 0) groups[groups.length - 1]!.risky = true;
    else if (c === ')') {
      const group = groups.pop();
      const next = pattern[i + 1];
      // `?` (and `{0,1}`) only make a group optional; repetition is what backtracks badly.
      const quantified =
        next === '*' || next === '+' || (next === '{' && !/^\{(0,)?1\}/.test(pattern.slice(i + 1)));
      if (quantified && group?.risky)
        return 'a repeated group may not contain a quantifier or an alternation';
      if (group?.risky && groups.length > 0) groups[groups.length - 1]!.risky = true;
    } else if (c === '*' || c === '+' || c === '?' || c === '{') {
      if (groups.length > 0) groups[groups.length - 1]!.risky = true;
      if (c === '*' || c === '+' || (c === '{' && /^\{\d+,\}/.test(pattern.slice(i)))) unbounded += 1;
    }
  }
  if (unbounded > MAX_UNBOUNDED_QUANTIFIERS)
    return `at most ${MAX_UNBOUNDED_QUANTIFIERS} unbounded quantifiers (*, +, {n,}) are allowed`;
  return undefined;
}
