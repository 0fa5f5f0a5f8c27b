import { TetherError } from '@tether-broker/protocol';
import { RE2JS } from 're2js';
import type { RecordingMode } from './recording.js';

/** How many distinct approvers a request needs, and who they may be. */
export interface ApprovalRule {
  /** Distinct approvals needed (1–10). Only a Cedar `auto_approve` permit skips review. */
  approvals: number;
  /** If either list is non-empty, an approver must be named here or be in one of the groups. */
  approvers: { principals: string[]; groups: string[] };
  /**
   * Seconds: an approval counts only from a person who verified themselves with a passkey this
   * recently (in the console); absent for none. Approvals made with a key file are refused.
   */
  freshVerificationSeconds?: number;
}

/** Whether a request must name a ticket, and its shape. */
export interface TicketRule {
  required: boolean;
  /** An RE2 regular expression the whole reference must match, e.g. `(NET|CHG)-[0-9]+`. */
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
  /** Names of the tenant's connectors: each session gets a credential from each, destroyed at its end. */
  connectors: string[];
  /** Whether its sessions must run recorded (`tether exec` on a PTY, streamed to the broker), and what. */
  recording: RecordingMode;
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

/**
 * Bounds on ticket patterns. Patterns run on RE2 (`re2js`), whose matching time is linear in
 * the input times the compiled program's size: both are bounded, so a decision stays well under
 * a millisecond whatever an administrator saved and whatever a requester sends.
 */
export const TICKET_PATTERN_LIMITS = {
  /** Characters in a pattern (the privilege schema holds the same bound). */
  maxPatternLength: 256,
  /** RE2 program instructions: `(a{0,40}){5}` compiles to ~410, `(NET|CHG)-[0-9]+` to ~20. */
  maxProgramSize: 500,
  /** Characters of a ticket reference matched (the request schemas hold the same bound). */
  maxReferenceLength: 128,
} as const;

/** A compiled ticket pattern: `test` answers whether the whole reference matches. */
export interface TicketPattern {
  readonly source: string;
  test(reference: string): boolean;
}

/** Compiled patterns by source, least recently used first: compiling costs more than matching. */
const compiledPatterns = new Map<string, TicketPattern>();
const COMPILED_PATTERN_CACHE = 256;

/**
 * Compiles a ticket pattern (RE2 syntax) for matching the WHOLE reference, or throws
 * `invalid_request` naming what is wrong. Never V8's backtracking engine: an administrator's
 * pattern like `(a{0,40}){5}` and a requester's ticket text would otherwise pin the event loop
 * for every tenant. RE2 has no lookaround and no backreferences; they are refused here, at save
 * time, with a message that says so.
 */
export function compileTicketPattern(pattern: string): TicketPattern {
  const cached = compiledPatterns.get(pattern);
  if (cached) {
    compiledPatterns.delete(pattern);
    compiledPatterns.set(pattern, cached);
    return cached;
  }
  const compiled = compileUncached(pattern);
  compiledPatterns.set(pattern, compiled);
  if (compiledPatterns.size > COMPILED_PATTERN_CACHE) {
    compiledPatterns.delete(compiledPatterns.keys().next().value as string);
  }
  return compiled;
}

function compileUncached(pattern: string): TicketPattern {
  if (pattern.length > TICKET_PATTERN_LIMITS.maxPatternLength) {
    throw new TetherError(
      'invalid_request',
      `ticket.pattern is refused: at most ${TICKET_PATTERN_LIMITS.maxPatternLength} characters`,
    );
  }
  let re: RE2JS;
  try {
    // `matches` anchors at both ends inside the engine: no textual wrapper a pattern like
    // `a)|(?:b` could break out of (it does not compile on its own).
    re = RE2JS.compile(pattern);
  } catch (err) {
    throw new TetherError('invalid_request', `ticket.pattern is refused: ${unsupportedReason(pattern, err)}`);
  }
  const size = re.programSize();
  if (size > TICKET_PATTERN_LIMITS.maxProgramSize) {
    throw new TetherError(
      'invalid_request',
      `ticket.pattern is refused: too complex (${size} RE2 instructions, at most ${TICKET_PATTERN_LIMITS.maxProgramSize}); use fewer or smaller bounded repetitions`,
    );
  }
  return {
    source: pattern,
    test: (reference) =>
      reference.length <= TICKET_PATTERN_LIMITS.maxReferenceLength && re.matches(reference),
  };
}

/** Why RE2 refused `pattern`, in words an administrator can act on. */
function unsupportedReason(pattern: string, err: unknown): string {
  if (/\\[1-9]|\\k</.test(pattern)) return 'backreferences are not supported (patterns run on RE2)';
  if (/\(\?<?[=!]/.test(pattern)) return 'lookahead and lookbehind are not supported (patterns run on RE2)';
  const detail = err instanceof Error ? err.message.replace(/^error parsing regexp: /, '') : '';
  return `not a valid RE2 regular expression${detail ? ` (${detail})` : ''}`;
}
