import { TetherError } from '@tether-broker/protocol';

/**
 * Federated workloads: a trust record says which OIDC issuer's tokens, for which audience,
 * may be exchanged (RFC 8693) for a session, and how the token's claims name a principal.
 * Everything here is pure; verifying the token is `auth/subject-token.ts`'s job.
 */

/** Signature algorithms a trust record may allow: asymmetric only, so the broker holds no secret of the issuer. */
export const FEDERATION_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;
export type FederationAlgorithm = (typeof FEDERATION_ALGORITHMS)[number];

/** The kinds of principal a workload token may be mapped to. Never a human: a person logs in as themselves. */
export const FEDERATED_PRINCIPAL_KINDS = ['pipeline', 'workload', 'service'] as const;

export const FEDERATION_DEFAULTS = {
  algorithms: ['RS256', 'ES256', 'EdDSA'] as FederationAlgorithm[],
  /** GitHub Actions names its run `run_id`; GitLab's equivalent is `pipeline_id`. */
  taskClaim: 'run_id',
  /** How old (by `iat`) a subject token may be when it is exchanged. */
  maxTokenAgeSeconds: 600,
} as const;

export const FEDERATION_LIMITS = {
  minTokenAgeSeconds: 30,
  maxTokenAgeSeconds: 3600,
  maxRules: 32,
  maxConditions: 16,
  maxContextClaims: 32,
  /** A claim path names at most this many nested members: `kubernetes.io/pod/uid` is three. */
  maxClaimPathSegments: 4,
  /** Characters of a claim path, `/` included. */
  maxClaimPathLength: 128,
} as const;

/**
 * One mapping rule: every condition must hold for the rule to match. A condition's value is an
 * exact string, or a glob in which `*` stands for any run of characters (`/` included) and no
 * other character is special: `refs/heads/*`, `repo:acme/*:ref:refs/tags/v*`.
 *
 * @example
 * ```ts
 * { match: { repository: 'acme/web', ref: 'refs/heads/main' }, principal: 'prn_…' }
 * ```
 */
export interface MappingRule {
  match: Record<string, string>;
  /** Id of the principal the rule maps to (names are resolved to ids when the record is created). */
  principal: string;
}

/** A trust record: whose workload tokens the broker accepts, and what they become. */
export interface Federation {
  id: string;
  tenantId: string;
  name: string;
  /** The exact `iss` of accepted tokens. */
  issuer: string;
  /**
   * The `aud` accepted tokens must carry: the tenant's own audience or a suffix of it
   * ({@link tenantAudience}); (issuer, audience) is unique across all tenants.
   */
  audience: string;
  /** Where the issuer publishes its keys; null when `jwks` is set. */
  jwksUri: string | null;
  /** The issuer's public keys, inline; null when `jwksUri` is set. */
  jwks: { keys: Record<string, unknown>[] } | null;
  algorithms: FederationAlgorithm[];
  /** Ordered: the first rule that matches wins. */
  principalMapping: MappingRule[];
  /** Claim paths ({@link claimPathProblem}) exposed to Cedar as principal tags `claim:<path>`. */
  contextClaims: string[];
  /** The claim (a path) whose value becomes the request's ticket (the task reference). */
  taskClaim: string;
  maxTokenAgeSeconds: number;
  /**
   * Whether a session started by an exchange ends, at the latest, when the subject token
   * expires (its `exp`): for tokens bound to a workload's life, such as Kubernetes' projected
   * service-account tokens.
   */
  endsWithSubjectToken: boolean;
  createdAt: number;
}

/** One segment of a claim path: a plain identifier, as CI providers and Kubernetes name claims. */
const CLAIM_SEGMENT = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/** Member names that belong to JavaScript's object model, never to a token's claims. */
const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Why `path` cannot name a claim, or undefined when it can. A claim path is a top-level claim
 * name (`repository`) or up to {@link FEDERATION_LIMITS.maxClaimPathSegments} names separated by
 * `/` that reach into nested objects (`kubernetes.io/namespace`, `kubernetes.io/pod/uid`); each
 * segment is an identifier, and none may be `__proto__`, `constructor` or `prototype`.
 *
 * @example
 * ```ts
 * claimPathProblem('kubernetes.io/pod/uid') // undefined
 * claimPathProblem('a/__proto__')           // '"__proto__" may not be a segment'
 * ```
 */
export function claimPathProblem(path: string): string | undefined {
  if (path.length > FEDERATION_LIMITS.maxClaimPathLength)
    return `a claim path has at most ${FEDERATION_LIMITS.maxClaimPathLength} characters`;
  const segments = path.split('/');
  if (segments.length > FEDERATION_LIMITS.maxClaimPathSegments)
    return `a claim path has at most ${FEDERATION_LIMITS.maxClaimPathSegments} segments`;
  for (const segment of segments) {
    if (segment === '') return 'a segment is empty';
    if (PROTOTYPE_KEYS.has(segment)) return `${JSON.stringify(segment)} may not be a segment`;
    if (!CLAIM_SEGMENT.test(segment))
      return `${JSON.stringify(segment)} is not an identifier (a letter or _, then letters, digits, _ . -; at most 64)`;
  }
  return undefined;
}

/** The error naming the field whose claim path cannot name a claim, and why. */
function claimPathError(field: string, path: string, problem: string): TetherError {
  return new TetherError(
    'invalid_request',
    `${field}: ${JSON.stringify(path.slice(0, 160))} is not a claim name: ${problem}`,
  );
}

/** A JSON object as `JSON.parse` makes it: neither an array nor an instance of a class. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * The value a claim path names, or undefined when the claims do not have it: each segment must
 * be an own member of a plain object (never of an array, never inherited, never a prototype
 * key), so a path reads only what the issuer put in the token. A top-level name reads the
 * top-level claim, as it always did; a top-level claim whose name holds a `/` is never read.
 *
 * @example
 * ```ts
 * claimAt({ 'kubernetes.io': { namespace: 'team-a' } }, 'kubernetes.io/namespace') // 'team-a'
 * claimAt({ 'kubernetes.io': 'team-a' }, 'kubernetes.io/namespace')                // undefined
 * ```
 */
export function claimAt(claims: Record<string, unknown>, path: string): unknown {
  let at: unknown = claims;
  for (const [i, segment] of path.split('/').entries()) {
    if (PROTOTYPE_KEYS.has(segment)) return undefined;
    // The claims set itself is whatever the verifier answered; what is inside it must be JSON.
    if (i > 0 && !isPlainObject(at)) return undefined;
    const parent = at as Record<string, unknown>;
    if (!Object.hasOwn(parent, segment)) return undefined;
    at = parent[segment];
  }
  return at;
}

/**
 * A task reference has the shape of a ticket reference in the API, so sessions can be listed
 * and revoked by it like any other ticket.
 */
const TASK_REFERENCE = /^[A-Za-z0-9][A-Za-z0-9._:#/-]{0,127}$/;

/** A claim's value as text: strings as they are, finite numbers and booleans stringified, nothing else. */
export function claimText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  return undefined;
}

/**
 * Whether `value` matches `pattern`, where `*` matches any run of characters. Linear: the
 * pattern is split on `*` and the pieces are found in order, never compiled to a regex.
 */
export function globMatches(pattern: string, value: string): boolean {
  const pieces = pattern.split('*');
  if (pieces.length === 1) return pattern === value;
  const first = pieces[0] ?? '';
  const last = pieces[pieces.length - 1] ?? '';
  if (value.length < first.length + last.length) return false;
  if (!value.startsWith(first) || !value.endsWith(last)) return false;
  let at = first.length;
  const end = value.length - last.length;
  for (const piece of pieces.slice(1, -1)) {
    const found = value.indexOf(piece, at);
    if (found < 0 || found + piece.length > end) return false;
    at = found + piece.length;
  }
  return true;
}

/**
 * Whether every condition of the rule holds for these claims. A condition names a claim path;
 * a missing or non-scalar claim fails its condition.
 */
export function ruleMatches(rule: Pick<MappingRule, 'match'>, claims: Record<string, unknown>): boolean {
  const conditions = Object.entries(rule.match);
  if (conditions.length === 0) return false;
  return conditions.every(([claim, pattern]) => {
    const text = claimText(claimAt(claims, claim));
    return text !== undefined && globMatches(pattern, text);
  });
}

/**
 * The principal the claims map to: the first matching rule's, with its position (for the
 * audit trail), or null when no rule matches.
 */
export function mapToPrincipal(
  rules: readonly MappingRule[],
  claims: Record<string, unknown>,
): { principal: string; rule: number } | null {
  const rule = rules.findIndex((r) => ruleMatches(r, claims));
  const found = rules[rule];
  return found ? { principal: found.principal, rule } : null;
}

/**
 * The claims policies see, as principal tags `claim:<path as written>`. Absent and non-scalar
 * claims are left out, so a policy tests `principal.hasTag("claim:ref")` before it reads one.
 *
 * @example
 * ```ts
 * claimTags(['ref'], { ref: 'refs/heads/main' }) // { 'claim:ref': 'refs/heads/main' }
 * claimTags(['kubernetes.io/namespace'], { 'kubernetes.io': { namespace: 'team-a' } })
 * // { 'claim:kubernetes.io/namespace': 'team-a' }
 * ```
 */
export function claimTags(names: readonly string[], claims: Record<string, unknown>): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const name of names) {
    const text = claimText(claimAt(claims, name));
    if (text !== undefined) tags[`claim:${name}`] = text;
  }
  return tags;
}

/**
 * The task reference named by the trust record's task claim: null when the token has no such
 * claim; `invalid` when it has one that is not a usable reference.
 */
export function taskReference(
  taskClaim: string,
  claims: Record<string, unknown>,
): { reference: string | null } | { invalid: string } {
  const value = claimAt(claims, taskClaim);
  if (value === undefined) return { reference: null };
  const text = claimText(value);
  if (text === undefined || !TASK_REFERENCE.test(text)) {
    return { invalid: `the ${taskClaim} claim is not a usable task reference` };
  }
  return { reference: text };
}

/**
 * Whether `uri` has the shape of a URL the broker may call: http(s), no credentials, no
 * fragment. Where it points (https only, no loopback or private address unless the operator
 * allows it) is the outbound client's decision, `net/outbound.ts`, made with the settings.
 */
export function isAcceptableJwksUri(uri: string): boolean {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return false;
  }
  if (url.username || url.password || url.hash) return false;
  return url.protocol === 'https:' || url.protocol === 'http:';
}

/** A tenant-chosen suffix of the tenant's audience: path segments of unreserved characters. */
const AUDIENCE_SUFFIX = /^[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/;

/**
 * The tenant's own audience: what the `aud` of a workload token or of a SET must name for the
 * broker to look for a trust record or transmitter of that tenant. Tokens carry no credential
 * but their signature, so their `aud` is what names the tenant; audiences are namespaced by
 * tenant so that no tenant can claim an (issuer, audience) another tenant's workloads use.
 */
export function tenantAudience(publicUrl: string, tenantName: string): string {
  return `${publicUrl}/tenants/${encodeURIComponent(tenantName)}`;
}

/** Whether `audience` is the tenant's audience, or it followed by `/` and a suffix (at most 128 characters). */
export function isTenantAudience(audience: string, publicUrl: string, tenantName: string): boolean {
  const base = tenantAudience(publicUrl, tenantName);
  if (audience === base) return true;
  if (!audience.startsWith(`${base}/`)) return false;
  const suffix = audience.slice(base.length + 1);
  // No `.` or `..` segment: an audience that a URL normaliser would turn into another tenant's.
  return (
    suffix.length <= 128 && AUDIENCE_SUFFIX.test(suffix) && !suffix.split('/').some((s) => /^\.+$/.test(s))
  );
}

/** Refuses an audience outside the tenant's own; the answer names only the tenant's own audience. */
export function assertTenantAudience(audience: string, publicUrl: string, tenantName: string): void {
  if (!isTenantAudience(audience, publicUrl, tenantName))
    throw new TetherError(
      'audience_not_in_tenant',
      `audience must be this tenant's audience ${tenantAudience(publicUrl, tenantName)}, or it followed by / and a suffix of letters, digits and . _ ~ -`,
    );
}

/** Checks the rules that a schema cannot express; throws `invalid_request` naming the field. */
export function assertFederationIsCoherent(
  f: Pick<
    Federation,
    | 'issuer'
    | 'audience'
    | 'jwksUri'
    | 'jwks'
    | 'algorithms'
    | 'principalMapping'
    | 'contextClaims'
    | 'taskClaim'
    | 'maxTokenAgeSeconds'
  >,
): void {
  const invalid = (detail: string) => new TetherError('invalid_request', detail);
  if ((f.jwksUri === null) === (f.jwks === null)) throw invalid('give exactly one of jwks_uri and jwks');
  if (f.jwksUri !== null && !isAcceptableJwksUri(f.jwksUri)) {
    throw invalid('jwks_uri must be an https URL without credentials or fragment');
  }
  if (f.algorithms.length === 0) throw invalid('algorithms may not be empty');
  const unknown = f.algorithms.filter((a) => !(FEDERATION_ALGORITHMS as readonly string[]).includes(a));
  if (unknown.length > 0) {
    throw invalid(`algorithms must be asymmetric signature algorithms; not accepted: ${unknown.join(', ')}`);
  }
  if (f.principalMapping.length === 0) throw invalid('principal_mapping needs at least one rule');
  if (f.principalMapping.length > FEDERATION_LIMITS.maxRules) {
    throw invalid(`principal_mapping may have at most ${FEDERATION_LIMITS.maxRules} rules`);
  }
  f.principalMapping.forEach((rule, i) => {
    const claims = Object.keys(rule.match);
    if (claims.length === 0) throw invalid(`principal_mapping[${i}].match needs at least one condition`);
    if (claims.length > FEDERATION_LIMITS.maxConditions) {
      throw invalid(
        `principal_mapping[${i}].match may have at most ${FEDERATION_LIMITS.maxConditions} conditions`,
      );
    }
    for (const claim of claims) {
      const problem = claimPathProblem(claim);
      if (problem !== undefined) throw claimPathError(`principal_mapping[${i}].match`, claim, problem);
    }
  });
  if (f.contextClaims.length > FEDERATION_LIMITS.maxContextClaims) {
    throw invalid(`context_claims may list at most ${FEDERATION_LIMITS.maxContextClaims} claims`);
  }
  for (const [field, name] of [
    ...f.contextClaims.map((c) => ['context_claims', c] as const),
    ['task_claim', f.taskClaim] as const,
  ]) {
    const problem = claimPathProblem(name);
    if (problem !== undefined) throw claimPathError(field, name, problem);
  }
  if (
    !Number.isInteger(f.maxTokenAgeSeconds) ||
    f.maxTokenAgeSeconds < FEDERATION_LIMITS.minTokenAgeSeconds ||
    f.maxTokenAgeSeconds > FEDERATION_LIMITS.maxTokenAgeSeconds
  ) {
    throw invalid(
      `max_token_age must be between ${FEDERATION_LIMITS.minTokenAgeSeconds} s and ${FEDERATION_LIMITS.maxTokenAgeSeconds} s`,
    );
  }
}
