/**
 * Containment of grant patterns, in the PEP's matching rules (packages/pep/src/entitlement.ts):
 * whether one action or resource pattern covers nothing another does not. Used where a grant is
 * cut from a wider one (a sub-session from its parent, a session under a changed privilege).
 */

/** Whether the action pattern `child` covers nothing that `parent` does not (`x*` patterns included). */
export function actionWithin(child: string, parent: string): boolean {
  if (parent.endsWith('*')) return child.startsWith(parent.slice(0, -1));
  return child === parent;
}

/**
 * Whether the resource pattern `child` covers nothing that `parent` does not, in the PEP's
 * matching rules (packages/pep/src/entitlement.ts: `**` whole segments, `*` within a segment).
 * Sound, not complete: when in doubt the answer is no, so a delegation can only be too narrow.
 */
export function resourceWithin(child: string, parent: string): boolean {
  const c = child.split('/');
  const p = parent.split('/');
  const memo = new Uint8Array((c.length + 1) * (p.length + 1));
  const within = (i: number, j: number): boolean => {
    const slot = i * (p.length + 1) + j;
    if (memo[slot] !== 0) return memo[slot] === 1;
    let result: boolean;
    if (j === p.length) result = i === c.length;
    else if (p[j] === '**') result = within(i, j + 1) || (i < c.length && within(i + 1, j));
    else result = i < c.length && c[i] !== '**' && segmentWithin(c[i]!, p[j]!) && within(i + 1, j + 1);
    memo[slot] = result ? 1 : 2;
    return result;
  };
  return within(0, 0);
}

/** One segment: `child`'s `*` stands for any run, so it fits only where `parent` has one too. */
function segmentWithin(child: string, parent: string): boolean {
  if (!parent.includes('*')) return child === parent;
  const parts = parent.split('*');
  if (!child.includes('*')) return globCovers(parts, child);
  if (child === parent || parent === '*') return true;
  // A child pattern fits a parent `prefix*suffix` when it starts with the prefix and ends with
  // the suffix outside its own stars; anything more intricate is refused.
  if (parts.length !== 2) return false;
  const [prefix, suffix] = parts as [string, string];
  const childParts = child.split('*');
  const first = childParts[0]!;
  const last = childParts[childParts.length - 1]!;
  return first.startsWith(prefix) && last.endsWith(suffix);
}

function globCovers(parts: string[], text: string): boolean {
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (text.length < first.length + last.length) return false;
  if (!text.startsWith(first) || !text.endsWith(last)) return false;
  let at = first.length;
  const end = text.length - last.length;
  for (const piece of parts.slice(1, -1)) {
    const found = text.indexOf(piece, at);
    if (found < 0 || found + piece.length > end) return false;
    at = found + piece.length;
  }
  return true;
}
