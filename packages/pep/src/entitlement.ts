import type { TetherPrivilegeDetail } from './access-token-claims.js';

/**
 * Entitlement matching: does a session's `authorization_details` cover one action on one
 * resource? The rules (also in packages/pep/README.md, "Entitlement matching"):
 *
 * - Both must be covered by the **same** entry: an entry grants each of its actions on each of
 *   its resources, never an action of one entry on a resource of another.
 * - **Actions** compare exactly (case-sensitive). An entry action ending in `*` covers every
 *   action that starts with the text before it (`firewall:*` covers `firewall:rules.read`);
 *   `*` alone covers every action.
 * - **Resources** are paths of `/`-separated segments. In an entry's resource pattern, a segment
 *   `**` covers zero or more whole segments, and `*` inside a segment covers any run of
 *   characters within that segment (never a `/`). Everything else compares exactly.
 * - A requested resource must be concrete and well-formed: not empty, at most 1024 characters,
 *   no empty, `.` or `..` segments, no control characters. Anything else is covered by nothing,
 *   so a path trick (`firewall/edge-1/../core`) cannot widen a grant.
 */

const MAX_RESOURCE_LENGTH = 1024;

/** C0 controls, DEL and C1 controls: never part of a resource name, often part of an attack. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

/** Why a requested resource can never be covered; undefined when it is well-formed. */
export function resourceProblem(resource: string): string | undefined {
  if (typeof resource !== 'string' || resource === '') return 'the resource is empty';
  if (resource.length > MAX_RESOURCE_LENGTH)
    return `the resource is longer than ${MAX_RESOURCE_LENGTH} characters`;
  if (hasControlCharacter(resource)) return 'the resource holds a control character';
  for (const segment of resource.split('/')) {
    if (segment === '' || segment === '.' || segment === '..')
      return 'the resource has an empty, "." or ".." segment';
  }
  return undefined;
}

/** Whether `pattern` (an entry's action) covers the requested `action`. */
export function actionCovers(pattern: string, action: string): boolean {
  if (pattern.endsWith('*')) return action.startsWith(pattern.slice(0, -1));
  return pattern === action;
}

/** Whether `pattern` (an entry's resource pattern) covers the requested, well-formed `resource`. */
export function resourceCovers(pattern: string, resource: string): boolean {
  const p = pattern.split('/');
  const r = resource.split('/');
  // memo[i * (r.length + 1) + j]: 0 unknown, 1 covers, 2 does not. Keeps `**` matching at
  // O(pattern segments × resource segments) whatever the pattern, so no pattern can stall a PEP.
  const memo = new Uint8Array((p.length + 1) * (r.length + 1));
  const covers = (i: number, j: number): boolean => {
    const slot = i * (r.length + 1) + j;
    if (memo[slot] !== 0) return memo[slot] === 1;
    let result: boolean;
    if (i === p.length) result = j === r.length;
    else if (p[i] === '**') result = covers(i + 1, j) || (j < r.length && covers(i, j + 1));
    else result = j < r.length && segmentCovers(p[i]!, r[j]!) && covers(i + 1, j + 1);
    memo[slot] = result ? 1 : 2;
    return result;
  };
  return covers(0, 0);
}

/** `*` within one segment: split on it and find the literal parts in order, anchored at both ends. */
function segmentCovers(pattern: string, segment: string): boolean {
  if (!pattern.includes('*')) return pattern === segment;
  const parts = pattern.split('*');
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (segment.length < first.length + last.length) return false;
  if (!segment.startsWith(first) || !segment.endsWith(last)) return false;
  // Greedy left-to-right search is exact for `*`-only globs: any match can be shifted leftmost.
  let at = first.length;
  const end = segment.length - last.length;
  for (const middle of parts.slice(1, -1)) {
    const found = segment.indexOf(middle, at);
    if (found < 0 || found + middle.length > end) return false;
    at = found + middle.length;
  }
  return true;
}

/**
 * The first entry of `details` that covers `action` on `resource`, or undefined. Entries of a
 * type other than `tether_privilege` are ignored (RFC 9396 lets a token carry other types).
 */
export function findEntitlement(
  details: readonly TetherPrivilegeDetail[],
  action: string,
  resource: string,
): TetherPrivilegeDetail | undefined {
  if (typeof action !== 'string' || action === '' || resourceProblem(resource) !== undefined)
    return undefined;
  return details.find(
    (d) =>
      d.type === 'tether_privilege' &&
      d.actions.some((a) => actionCovers(a, action)) &&
      d.resources.some((pattern) => resourceCovers(pattern, resource)),
  );
}

// Answers by token. Verified claims are frozen and shared by every request presenting the same
// token, so the answer for one (action, resource) never changes for them; a few are kept per
// token (the requests choose the pairs), and go with the claims.
const MATCHES = new WeakMap<readonly TetherPrivilegeDetail[], Map<string, TetherPrivilegeDetail | null>>();
const MATCHES_PER_TOKEN = 64;

/** {@link findEntitlement}, remembered per token when `details` is frozen (verified claims are). */
export function findEntitlementRemembered(
  details: readonly TetherPrivilegeDetail[],
  action: string,
  resource: string,
): TetherPrivilegeDetail | undefined {
  if (!Object.isFrozen(details) || typeof action !== 'string' || typeof resource !== 'string') {
    return findEntitlement(details, action, resource);
  }
  let known = MATCHES.get(details);
  if (known === undefined) {
    known = new Map();
    MATCHES.set(details, known);
  }
  const key = `${action}\u0000${resource}`;
  const remembered = known.get(key);
  if (remembered !== undefined) return remembered ?? undefined;
  const found = findEntitlement(details, action, resource);
  if (known.size < MATCHES_PER_TOKEN) known.set(key, found ?? null);
  return found;
}
