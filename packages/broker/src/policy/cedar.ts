/**
 * The Cedar policy engine: validates tenant policy sets against {@link CEDAR_SCHEMA} and
 * decides requests with preparsed policy sets.
 *
 * Backed by `@cedar-policy/cedar-wasm`. Every function here is synchronous and never logs.
 */
import { setFlagsFromString } from 'node:v8';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { TrustFacts } from '../domain/trust.js';
import { CEDAR_SCHEMA } from './schema.js';

export type { TrustFacts } from '../domain/trust.js';

// Node 20's V8 inlines JS->Wasm calls into optimised callers, and a lazy deoptimisation on the
// return from such an inlined call aborts the whole process ("Fatal error: unreachable code",
// Deoptimizer::DoComputeBuiltinContinuation). Thousands of decisions in a row (continuous
// evaluation of every live session after a policy change) hit it within seconds; with the
// calls kept out of line they never did, and ran faster. Set before any caller is optimised.
setFlagsFromString('--no-turbo-inline-js-wasm-calls');

/** The actions a policy can govern (`Tether::Action::"<action>"`). */
export type PolicyAction = 'request' | 'approve' | 'auto_approve' | 'continue';

/** A principal as policies see it (`Tether::Principal::"<id>"`). */
export interface PrincipalFacts {
  id: string;
  name: string;
  /** human | service | pipeline | agent | workload */
  kind: string;
  enabled: boolean;
  /** Names of the groups the principal belongs to (`Tether::Group::"<name>"`; names are unique per tenant and never change). */
  groups: string[];
  /** Free-form attributes, exposed to policies as Cedar tags. */
  attributes: Record<string, string>;
}

/** A privilege as policies see it (`Tether::Privilege::"<id>"`). */
export interface PrivilegeFacts {
  id: string;
  name: string;
  /** Free-form attributes, exposed to policies as Cedar tags. */
  attributes: Record<string, string>;
}

/** The request's ticket as the ticket register knows it (`context.ticket_info`). */
export interface TicketFacts {
  /** The webhook source that reports it, or `manual`. */
  source: string;
  /** open | closed */
  state: string;
  title: string;
  assignees: string[];
  /** Whether the requester is among the assignees (through the source's assignee attribute). */
  assignedToRequester: boolean;
}

/** The trust context of a principal no signal has reported on. */
export const UNKNOWN_TRUST: Readonly<TrustFacts> = Object.freeze({
  deviceCompliance: 'unknown',
  assuranceLevel: 'unknown',
  riskLevel: 'unknown',
  credentialChanged: false,
  claims: [],
});

/**
 * Tether's own policy for `continue`, added to the tenant's set when continuation is asked:
 * a live session goes on unless a tenant policy forbids it. Its id cannot clash with a
 * tenant's (tenant ids may not hold `:`).
 */
export const CONTINUE_BASELINE: Readonly<PolicyTexts> = Object.freeze({
  'tether:continue-unless-forbidden': 'permit(principal, action == Tether::Action::"continue", resource);',
});

/** Everything one authorization decision depends on. */
export interface DecisionInput {
  action: PolicyAction;
  /** Who acts: the requester, or the approver for `approve`. */
  principal: PrincipalFacts;
  /** Who asked for the access (`context.requester`). */
  requester: PrincipalFacts;
  privilege: PrivilegeFacts;
  ticket?: string;
  /** Present when the ticket register knows the ticket. */
  ticketInfo?: TicketFacts | undefined;
  /** A whole number of seconds; for an extension, the session's whole length once extended. */
  durationSeconds: number;
  /**
   * Set when the request extends a live session: the seconds it adds (`context.is_extension`,
   * `context.extension_seconds`). Absent for a request for a new session.
   */
  extensionSeconds?: number | undefined;
  reason: string;
  /** Epoch milliseconds. */
  at: number;
  /** IANA zone, e.g. `UTC` or `Europe/Paris`; `context.hour` and `context.weekday` are computed in it. */
  timeZone: string;
  /** `continue` only: `context.trust` (default: nothing reported, {@link UNKNOWN_TRUST}). */
  trust?: TrustFacts | undefined;
  /** `continue` only: `context.entitlement_action`, the granted action asked about. */
  entitlementAction?: string | undefined;
  /**
   * `continue` only, when set: `context.entitlement_resource`, the granted resource asked about
   * (a `Tether::Resource` whose tags are its `/`-separated segments by position, see {@link resourceEntity}).
   */
  entitlementResource?: string | undefined;
  /** The relationship a provider operator asks (or holds a session) under: `context.relationship`. */
  relationship?: RelationshipFacts | undefined;
}

/** A provider relationship as Cedar sees it (`context.relationship`). */
export interface RelationshipFacts {
  id: string;
  name: string;
  /** The provider tenant's name. */
  provider: string;
  /** Names of the operator's groups in the provider tenant that the relationship names. */
  providerGroups: string[];
}

/** The outcome of {@link PolicyEngine.decide}. */
export interface PolicyDecision {
  allowed: boolean;
  /**
   * Ids of the policies that determined the decision: the satisfied permits of an allow, the
   * satisfied forbids of a deny (empty for a default deny), or the policies whose evaluation
   * failed when errors turned the decision into a deny.
   */
  policies: string[];
  /** Evaluation errors, if any. Any error makes the decision a deny. */
  errors: string[];
}

/** The outcome of {@link validatePolicySet}. */
export interface PolicySetValidation {
  ok: boolean;
  /** Human-readable engine messages; each names the policy id it is about. */
  errors: string[];
}

/** Policy id -> Cedar text of exactly one static policy. */
export type PolicyTexts = Record<string, string>;

/** What a policy id must look like (it is also the key the engine reports decisions by). */
const POLICY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const NAMESPACE = 'Tether';

/** Name under which the schema is preparsed inside the wasm module (see {@link ensureSchemaPreparsed}). */
const PREPARSED_SCHEMA_NAME = 'tether-policy-schema';

/** Default number of preparsed policy sets a {@link PolicyEngine} keeps. */
const DEFAULT_CACHE_CAPACITY = 64;

/**
 * Parse and validate a policy set against {@link CEDAR_SCHEMA} in strict mode.
 *
 * Refuses ids that do not match `/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/`, entries that do not
 * contain exactly one static policy (templates included), syntax errors and schema errors.
 * All problems are reported in one pass. An empty set is valid. Never throws for bad text.
 */
export function validatePolicySet(policies: PolicyTexts): PolicySetValidation {
  const errors: string[] = [];
  // Entries are parsed one by one so that every syntax error is reported, not just the first;
  // the entries that parse are then validated together, so schema errors come in the same pass.
  const parsed: PolicyTexts = {};
  for (const [id, text] of Object.entries(policies)) {
    const entryErrors = checkPolicyEntry(id, text);
    if (entryErrors.length === 0) parsed[id] = text;
    else errors.push(...entryErrors);
  }
  if (Object.keys(parsed).length > 0) errors.push(...validateAgainstSchema(parsed));
  return { ok: errors.length === 0, errors };
}

/** Id, type and single-policy checks for one entry; returns its errors. */
function checkPolicyEntry(id: string, text: unknown): string[] {
  if (!POLICY_ID_PATTERN.test(id)) {
    return [
      `policy id ${JSON.stringify(id)} is invalid: expected 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`,
    ];
  }
  if (typeof text !== 'string') return [`policy ${JSON.stringify(id)}: text must be a string`];
  const answer = guard(() => cedar.checkParsePolicySet({ staticPolicies: { [id]: text } }));
  if (answer.type === 'success') return [];
  // Cedar refuses zero or several policies in one entry with a bare syntax error ("unexpected
  // token `permit`"); counting the policies in the text gives a clearer message.
  const count = countPolicies(text);
  if (count !== undefined && count !== 1) {
    return [`policy ${JSON.stringify(id)}: an entry must contain exactly one policy, found ${count}`];
  }
  return answer.errors.map((error) => describeError(error, id));
}

/** Number of policies and templates in `text`, or undefined when it does not parse as a set. */
function countPolicies(text: string): number | undefined {
  const parts = guard(() => cedar.policySetTextToParts(text));
  if (parts.type !== 'success') return undefined;
  return parts.policies.length + parts.policy_templates.length;
}

function validateAgainstSchema(policies: PolicyTexts): string[] {
  const answer = guard(() =>
    cedar.validate({
      schema: CEDAR_SCHEMA,
      policies: { staticPolicies: policies },
      validationSettings: { mode: 'strict' },
    }),
  );
  if (answer.type === 'failure') return answer.errors.map((error) => describeError(error));
  return answer.validationErrors.map(({ policyId, error }) => describeError(error, policyId));
}

/**
 * Decides requests against tenant policy sets, keeping a bounded LRU of preparsed sets.
 *
 * Preparsing: cedar-wasm's `preparsePolicySet(id, set)` parses a set once and stores it inside
 * the wasm module under `id`; `statefulIsAuthorized` then evaluates against it without
 * reparsing. The wasm side offers no way to drop a stored set, only to overwrite it, so the
 * engine owns a fixed pool of `capacity` wasm-side slot ids and maps cache keys to slots; an
 * evicted key's slot is overwritten by the next set. Wasm memory is thus bounded by
 * `capacity` sets per engine. Slot ids are unique per engine instance because the wasm store
 * is process-wide: create one long-lived engine per process rather than one per request.
 *
 * The schema is likewise preparsed once per process, so entities, context and the request
 * shape are checked against it on every decision.
 */
export class PolicyEngine {
  readonly #cache: PreparsedPolicySets;

  /** @param options.capacity how many preparsed policy sets to keep (default 64). */
  constructor(options: { capacity?: number } = {}) {
    ensureSchemaPreparsed();
    this.#cache = new PreparsedPolicySets(options.capacity ?? DEFAULT_CACHE_CAPACITY);
  }

  /**
   * Decide one request. Default deny: with no applicable permit the answer is a deny.
   *
   * `cacheKey` identifies an immutable policy-set version (e.g. `${tenantId}:${version}`):
   * the same key means the same set, so on a cache hit `policies` is not read at all. Use a
   * new key whenever the texts change. `policies` should have passed
   * {@link validatePolicySet}; a set that does not parse yields a deny with errors.
   *
   * Never throws for bad input: unparsable policies, an unknown time zone, a non-integer
   * duration and evaluation errors all yield `allowed: false` with `errors`.
   */
  decide(cacheKey: string, policies: PolicyTexts, input: DecisionInput): PolicyDecision {
    const request = buildRequest(input);
    if ('errors' in request) return deny([], request.errors);
    const slot = this.#cache.slotFor(cacheKey, policies);
    if ('errors' in slot) return deny([], slot.errors);

    const answer = guard(() =>
      cedar.statefulIsAuthorized({
        ...request,
        preparsedSchemaName: PREPARSED_SCHEMA_NAME,
        preparsedPolicySetId: slot.slotId,
        validateRequest: true,
      }),
    );
    if (answer.type === 'failure')
      return deny(
        [],
        answer.errors.map((error) => describeError(error)),
      );

    const { decision, diagnostics } = answer.response;
    if (diagnostics.errors.length > 0) {
      // Cedar skips a policy whose evaluation fails, which could let a permit win over a
      // forbid that errored; a privilege broker fails closed instead.
      return deny(
        unique(diagnostics.errors.map((e) => e.policyId)),
        diagnostics.errors.map(({ policyId, error }) => describeError(error, policyId)),
      );
    }
    return { allowed: decision === 'allow', policies: [...diagnostics.reason], errors: [] };
  }
}

/** The number of engines created so far; gives each engine its own wasm-side slot ids. */
let engineCount = 0;

/** LRU from cache key to the wasm-side slot holding that key's preparsed policy set. */
class PreparsedPolicySets {
  /** Map iteration order is insertion order: the first entry is the least recently used. */
  readonly #slotByKey = new Map<string, string>();
  readonly #freeSlots: string[] = [];

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`policy cache capacity must be a positive integer, got ${capacity}`);
    }
    engineCount += 1;
    for (let i = capacity - 1; i >= 0; i -= 1) this.#freeSlots.push(`tether-engine-${engineCount}-slot-${i}`);
  }

  /** The slot holding `cacheKey`'s set, preparsing `policies` into a slot on a miss. */
  slotFor(cacheKey: string, policies: PolicyTexts): { slotId: string } | { errors: string[] } {
    const cached = this.#slotByKey.get(cacheKey);
    if (cached !== undefined) {
      this.#slotByKey.delete(cacheKey);
      this.#slotByKey.set(cacheKey, cached);
      return { slotId: cached };
    }

    const slotId = this.#freeSlots.pop() ?? this.#evictLeastRecentlyUsed();
    const answer = guard(() => cedar.preparsePolicySet(slotId, { staticPolicies: policies }));
    if (answer.type === 'failure') {
      // Failed preparses are not cached: the slot keeps nothing reachable and goes back to the pool.
      this.#freeSlots.push(slotId);
      return { errors: answer.errors.map((error) => describeError(error)) };
    }
    this.#slotByKey.set(cacheKey, slotId);
    return { slotId };
  }

  #evictLeastRecentlyUsed(): string {
    const oldest = this.#slotByKey.entries().next();
    if (oldest.done) throw new Error('policy cache has neither a free nor a used slot');
    const [key, slotId] = oldest.value;
    this.#slotByKey.delete(key);
    return slotId;
  }
}

let schemaPreparsed = false;

/** Preparse {@link CEDAR_SCHEMA} once per process; failure is a bug in the schema, hence a throw. */
function ensureSchemaPreparsed(): void {
  if (schemaPreparsed) return;
  const answer = cedar.preparseSchema(PREPARSED_SCHEMA_NAME, CEDAR_SCHEMA);
  if (answer.type === 'failure') {
    throw new Error(`Tether Cedar schema does not parse: ${answer.errors.map((e) => e.message).join('; ')}`);
  }
  schemaPreparsed = true;
}

type CedarRequest = Pick<
  cedar.StatefulAuthorizationCall,
  'principal' | 'action' | 'resource' | 'context' | 'entities'
>;

/** Translate a decision input into a Cedar request with its entities. */
function buildRequest(input: DecisionInput): CedarRequest | { errors: string[] } {
  if (!Number.isSafeInteger(input.durationSeconds)) {
    return { errors: [`durationSeconds must be an integer, got ${input.durationSeconds}`] };
  }
  if (input.extensionSeconds !== undefined && !Number.isSafeInteger(input.extensionSeconds)) {
    return { errors: [`extensionSeconds must be an integer, got ${input.extensionSeconds}`] };
  }
  const clock = localClock(input.at, input.timeZone);
  if ('error' in clock) return { errors: [clock.error] };

  const principal = principalUid(input.principal.id);
  const entities: cedar.EntityJson[] = [principalEntity(input.principal)];
  if (input.requester.id !== input.principal.id) entities.push(principalEntity(input.requester));
  const groupIds = new Set([...input.principal.groups, ...input.requester.groups]);
  for (const id of groupIds) entities.push({ uid: groupUid(id), attrs: {}, parents: [] });
  entities.push({
    uid: privilegeUid(input.privilege.id),
    attrs: { name: input.privilege.name },
    parents: [],
    tags: { ...input.privilege.attributes },
  });

  const context: Record<string, cedar.CedarValueJson> = {
    // Required in the schema (see schema.cedarschema): the empty string stands for "no ticket".
    ticket: input.ticket ?? '',
    has_ticket: input.ticket !== undefined && input.ticket !== '',
    duration_seconds: input.durationSeconds,
    is_extension: input.extensionSeconds !== undefined,
    extension_seconds: input.extensionSeconds ?? 0,
    reason: input.reason,
    hour: clock.hour,
    weekday: clock.weekday,
    principal_kind: input.principal.kind,
    requester: { __entity: principalUid(input.requester.id) },
  };
  // Optional members are assigned, not spread into the literal: conditional object spreads
  // here met a TurboFan lazy-deoptimisation crash of Node 20 ("Fatal error: unreachable
  // code") when continuous evaluation decided thousands of sessions in a row.
  if (input.ticketInfo) context.ticket_info = ticketInfoContext(input.ticketInfo);
  if (input.relationship)
    context.relationship = {
      id: input.relationship.id,
      name: input.relationship.name,
      provider: input.relationship.provider,
      provider_groups: [...input.relationship.providerGroups],
    };
  if (input.action === 'continue') addContinueContext(context, input);
  if (input.action === 'continue' && input.entitlementResource !== undefined) {
    context.entitlement_resource = { __entity: resourceUid(input.entitlementResource) };
    entities.push(resourceEntity(input.entitlementResource));
  }
  return {
    principal,
    action: { type: `${NAMESPACE}::Action`, id: input.action },
    resource: privilegeUid(input.privilege.id),
    context,
    entities,
  };
}

/** The members only `continue` has (ContinueContext in the schema). */
function addContinueContext(context: Record<string, cedar.CedarValueJson>, input: DecisionInput): void {
  const trust = input.trust ?? UNKNOWN_TRUST;
  context.trust = {
    device_compliance: trust.deviceCompliance,
    assurance_level: trust.assuranceLevel,
    risk_level: trust.riskLevel,
    credential_changed: trust.credentialChanged,
    claims: trust.claims.slice(),
  };
  context.entitlement_action = input.entitlementAction ?? '';
}

function ticketInfoContext(t: TicketFacts): Record<string, cedar.CedarValueJson> {
  return {
    source: t.source,
    state: t.state,
    title: t.title,
    assignees: [...t.assignees],
    assigned_to_requester: t.assignedToRequester,
  };
}

function principalEntity(facts: PrincipalFacts): cedar.EntityJson {
  return {
    uid: principalUid(facts.id),
    attrs: { name: facts.name, kind: facts.kind, enabled: facts.enabled },
    parents: facts.groups.map(groupUid),
    tags: { ...facts.attributes },
  };
}

/**
 * A resource of a grant as policies see it: its name, and each `/`-separated segment as a tag
 * named by its position from 1, so that a policy can compare a part of the resource with a
 * principal tag (Cedar has no string operations but `like` with a literal pattern).
 *
 * @example
 * ```ts
 * resourceEntity('k8s/team-a/*').tags // { '1': 'k8s', '2': 'team-a', '3': '*' }
 * ```
 */
export function resourceEntity(resource: string): cedar.EntityJson {
  const tags: Record<string, cedar.CedarValueJson> = {};
  for (const [i, segment] of resource.split('/').entries()) tags[String(i + 1)] = segment;
  return { uid: resourceUid(resource), attrs: { name: resource }, parents: [], tags };
}

function resourceUid(resource: string): cedar.TypeAndId {
  return { type: `${NAMESPACE}::Resource`, id: resource };
}

function principalUid(id: string): cedar.TypeAndId {
  return { type: `${NAMESPACE}::Principal`, id };
}

function groupUid(id: string): cedar.TypeAndId {
  return { type: `${NAMESPACE}::Group`, id };
}

function privilegeUid(id: string): cedar.TypeAndId {
  return { type: `${NAMESPACE}::Privilege`, id };
}

const WEEKDAY_NUMBERS: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/** Formatters are costly to build and there are only a few hundred zones: keep one per zone. */
const clockFormatters = new Map<string, Intl.DateTimeFormat>();

/** Hour (0-23) and weekday (0 = Sunday) of the instant `at` on a wall clock in `timeZone`. */
function localClock(at: number, timeZone: string): { hour: number; weekday: number } | { error: string } {
  if (!Number.isFinite(at)) return { error: `at must be epoch milliseconds, got ${at}` };
  let formatter = clockFormatters.get(timeZone);
  if (formatter === undefined) {
    try {
      // hourCycle h23 so that midnight is 0, never 24.
      formatter = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        hour: 'numeric',
        weekday: 'short',
      });
    } catch {
      return { error: `unknown time zone ${JSON.stringify(timeZone)}` };
    }
    clockFormatters.set(timeZone, formatter);
  }
  const parts = formatter.formatToParts(at);
  const hour = Number(parts.find((part) => part.type === 'hour')?.value);
  const weekday = WEEKDAY_NUMBERS[parts.find((part) => part.type === 'weekday')?.value ?? ''];
  if (!Number.isInteger(hour) || weekday === undefined) {
    return { error: `cannot read the time in ${timeZone}` };
  }
  return { hour, weekday };
}

function deny(policies: string[], errors: string[]): PolicyDecision {
  return { allowed: false, policies, errors };
}

/** One line per engine error: the message, its help if any, and the policy id unless already named. */
function describeError(error: cedar.DetailedError, policyId?: string): string {
  const mentionsId = policyId === undefined || error.message.includes(`\`${policyId}\``);
  const message = mentionsId ? error.message : `policy ${JSON.stringify(policyId)}: ${error.message}`;
  return error.help ? `${message} (${error.help})` : message;
}

/**
 * Run a wasm call and turn an exception (e.g. input the bindings cannot deserialize) into a
 * failure answer, so that callers never see a throw for bad input.
 */
function guard<T extends { type: string }>(
  call: () => T,
): T | { type: 'failure'; errors: cedar.DetailedError[] } {
  try {
    return call();
  } catch (thrown) {
    const message = thrown instanceof Error ? thrown.message : String(thrown);
    return { type: 'failure', errors: [{ message, help: null, code: null, url: null, severity: null }] };
  }
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
