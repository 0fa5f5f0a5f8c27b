import { TetherError } from '@tether-broker/protocol';
import { actionWithin, resourceWithin } from './grant-patterns.js';
import type { ActClaim, Delegation, Session, SessionGrant } from './session.js';

export { actionWithin, resourceWithin } from './grant-patterns.js';
export type { ActClaim, Delegation } from './session.js';

/**
 * Delegated sub-sessions (RFC 8693 delegation): the holder of a live session hands a narrower
 * piece of it to an agent or tool for one run. What the sub-session may hold is decided here,
 * purely: never an action, resource or audience its parent does not cover, never past its
 * parent's hard expiry, never deeper than the depth setting. Who acts for whom is the RFC 8693
 * §4.1 `act` claim.
 */

/** What the holder asks for, already parsed. */
export interface DelegationAsk {
  actor: string;
  actions: string[];
  resources: string[];
  audiences: string[] | undefined;
  durationSeconds: number | undefined;
  idleTimeoutSeconds: number | undefined;
  callBudget: Record<string, number> | undefined;
}

export const DELEGATION_LIMITS = {
  maxActorLength: 128,
  maxEntries: 64,
  maxEntryLength: 512,
  maxBudgetCalls: 1_000_000,
} as const;

/** An actor name: printable, no spaces at the ends, bounded (it is shown in the audit trail). */
const ACTOR_NAME = /^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$/;

const refuse = (detail: string) => new TetherError('invalid_delegation', detail);

/** No empty, `.` or `..` segment and no control character: a PEP would never match such a path. */
function isWellFormedPattern(resource: string): boolean {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
  if (/[\u0000-\u001f\u007f-\u009f]/.test(resource)) return false;
  return resource.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}

/** An action, resource or audience list as asked: bounded, non-empty, no duplicates. */
function readList(what: string, list: readonly string[]): string[] {
  if (list.length === 0) throw refuse(`name at least one ${what}`);
  if (list.length > DELEGATION_LIMITS.maxEntries)
    throw refuse(`at most ${DELEGATION_LIMITS.maxEntries} ${what}s`);
  for (const entry of list) {
    if (typeof entry !== 'string' || entry.length === 0 || entry.length > DELEGATION_LIMITS.maxEntryLength)
      throw refuse(`each ${what} is a string of 1 to ${DELEGATION_LIMITS.maxEntryLength} characters`);
  }
  return [...new Set(list)];
}

/**
 * The grant of a sub-session: exactly what was asked, each action, resource and audience
 * covered by the parent's current grant, or a refusal naming the first that is not.
 */
export function delegatedGrant(parent: SessionGrant, ask: DelegationAsk): SessionGrant {
  const actions = readList('action', ask.actions);
  const resources = readList('resource', ask.resources);
  const audiences = ask.audiences === undefined ? [...parent.audiences] : readList('audience', ask.audiences);
  for (const action of actions) {
    if (!parent.actions.some((held) => actionWithin(action, held)))
      throw refuse(`action ${JSON.stringify(action)} is not held by the parent session`);
  }
  for (const resource of resources) {
    if (!isWellFormedPattern(resource))
      throw refuse(
        `resource ${JSON.stringify(resource)} has an empty, "." or ".." segment or a control character`,
      );
    if (!parent.resources.some((held) => resourceWithin(resource, held)))
      throw refuse(`resource ${JSON.stringify(resource)} is not within the parent session's resources`);
  }
  for (const audience of audiences) {
    if (!parent.audiences.includes(audience))
      throw refuse(`audience ${JSON.stringify(audience)} is not an audience of the parent session`);
  }
  return { ...parent, actions, resources, audiences };
}

/** The sub-session's hard expiry: the asked duration from now, refused past the parent's. */
export function delegatedExpiry(
  parent: Pick<Session, 'hardExpiresAt'>,
  ask: DelegationAsk,
  now: number,
): number {
  if (ask.durationSeconds === undefined) return parent.hardExpiresAt;
  const asked = now + ask.durationSeconds * 1000;
  if (asked > parent.hardExpiresAt)
    throw refuse(
      `the parent session ends at ${new Date(parent.hardExpiresAt).toISOString()}; a sub-session cannot outlive it`,
    );
  return asked;
}

/** The sub-session's idle timeout: the asked one, never longer than the parent's. */
export function delegatedIdleTimeout(
  parent: Pick<Session, 'idleTimeoutSeconds'>,
  ask: DelegationAsk,
): number | null {
  if (ask.idleTimeoutSeconds === undefined) return parent.idleTimeoutSeconds;
  if (parent.idleTimeoutSeconds !== null && ask.idleTimeoutSeconds > parent.idleTimeoutSeconds)
    throw refuse(`the parent session's idle timeout is ${parent.idleTimeoutSeconds} s; ask for that or less`);
  return ask.idleTimeoutSeconds;
}

/** The call budget: each budgeted action one the sub-session holds, each count bounded. */
export function delegatedBudget(grant: SessionGrant, ask: DelegationAsk): Record<string, number> | null {
  if (ask.callBudget === undefined) return null;
  const entries = Object.entries(ask.callBudget);
  if (entries.length === 0) throw refuse('a call budget names at least one action');
  if (entries.length > DELEGATION_LIMITS.maxEntries)
    throw refuse(`a call budget names at most ${DELEGATION_LIMITS.maxEntries} actions`);
  const budget: Record<string, number> = {};
  for (const [action, calls] of entries) {
    if (!grant.actions.includes(action))
      throw refuse(`the call budget names ${JSON.stringify(action)}, which the sub-session does not hold`);
    if (!Number.isInteger(calls) || calls < 1 || calls > DELEGATION_LIMITS.maxBudgetCalls)
      throw refuse(`a call budget is a whole number of calls from 1 to ${DELEGATION_LIMITS.maxBudgetCalls}`);
    budget[action] = calls;
  }
  return budget;
}

/** The actor's name, as its actor token states it. */
export function readActorName(name: unknown): string {
  if (typeof name !== 'string' || !ACTOR_NAME.test(name))
    throw refuse(
      `the actor token's sub names the actor: 1 to ${DELEGATION_LIMITS.maxActorLength} printable characters`,
    );
  return name;
}

/** The `act` claim of a sub-session of `parent` acted by `actor`: the parent's own actors nested inside. */
export function actOf(actor: string, parent: Pick<Session, 'delegation'>): ActClaim {
  return parent.delegation === null ? { sub: actor } : { sub: actor, act: parent.delegation.act };
}

/** The depth of a new sub-session of `parent`, refused past `maxDepth`. */
export function delegatedDepth(parent: Pick<Session, 'delegation'>, maxDepth: number): number {
  const depth = (parent.delegation?.depth ?? 0) + 1;
  if (depth > maxDepth)
    throw new TetherError(
      'delegation_too_deep',
      maxDepth === 0
        ? 'delegation is turned off on this broker (limits.delegationDepth 0)'
        : `sub-sessions may be nested at most ${maxDepth} deep; this one would be ${depth}`,
    );
  return depth;
}

/**
 * The budgeted actions a batch of allowed calls exhausts, after counting them in: a call counts
 * against each budgeted action that covers it (`deploy:*` covers `deploy:run`).
 */
export function countCalls(
  delegation: Delegation,
  actions: readonly string[],
): { callsMade: Record<string, number>; exhausted: string[] } {
  const callsMade = { ...delegation.callsMade };
  const budget = delegation.callBudget ?? {};
  for (const action of actions) {
    for (const budgeted of Object.keys(budget)) {
      if (actionWithin(action, budgeted)) callsMade[budgeted] = (callsMade[budgeted] ?? 0) + 1;
    }
  }
  const exhausted = Object.entries(budget)
    .filter(([action, calls]) => (callsMade[action] ?? 0) >= calls)
    .map(([action]) => action);
  return { callsMade, exhausted };
}
