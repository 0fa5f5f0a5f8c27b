import { type Static, Type } from '@sinclair/typebox';

/**
 * OpenID AuthZEN Authorization API 1.0 (January 2026): the information model (§5), the Access
 * Evaluation API (§6), the Access Evaluations API (§7) and the PDP metadata (§9). Unknown members
 * are ignored, as §10.1.1 requires, so these objects allow additional properties; what Tether
 * reads of them is bounded.
 */

const Properties = Type.Record(Type.String(), Type.Unknown(), {
  description: 'free-form attributes (§5.1.1); Tether does not read them',
});

/** §5.1: who asks. Tether reads `type` `session` (id: a session id) or `principal` (id: a name or id). */
export const AuthzenSubject = Type.Object({
  type: Type.String({ minLength: 1, maxLength: 128 }),
  id: Type.String({ minLength: 1, maxLength: 512 }),
  properties: Type.Optional(Properties),
});
/** §5.2: what on. Tether matches `id` against the session's resources; `type` is the caller's. */
export const AuthzenResource = Type.Object({
  type: Type.String({ minLength: 1, maxLength: 128 }),
  id: Type.String({ minLength: 1, maxLength: 1024 }),
  properties: Type.Optional(Properties),
});
/** §5.3: doing what. `name` is a Tether action, e.g. `firewall:rules.write`. */
export const AuthzenAction = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 256 }),
  properties: Type.Optional(Properties),
});
const AuthzenContext = Type.Record(Type.String(), Type.Unknown(), { description: '§5.4' });

/** §6.1: the body of `POST /access/v1/evaluation`. */
export const AuthzenEvaluationRequest = Type.Object({
  subject: AuthzenSubject,
  action: AuthzenAction,
  resource: AuthzenResource,
  context: Type.Optional(AuthzenContext),
});
export type AuthzenEvaluationRequest = Static<typeof AuthzenEvaluationRequest>;

/** §5.5: a decision, and why (Tether puts `reason_admin` and `reason_user` in `context` on a deny). */
export const AuthzenDecision = Type.Object({
  decision: Type.Boolean(),
  context: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type AuthzenDecision = Static<typeof AuthzenDecision>;

/** The most evaluations one boxcar may carry. */
export const AUTHZEN_MAX_EVALUATIONS = 64;

/** §7.1: the body of `POST /access/v1/evaluations`; top-level members are defaults (§7.1.1). */
export const AuthzenEvaluationsRequest = Type.Object({
  subject: Type.Optional(AuthzenSubject),
  action: Type.Optional(AuthzenAction),
  resource: Type.Optional(AuthzenResource),
  context: Type.Optional(AuthzenContext),
  evaluations: Type.Optional(
    Type.Array(
      Type.Object({
        subject: Type.Optional(AuthzenSubject),
        action: Type.Optional(AuthzenAction),
        resource: Type.Optional(AuthzenResource),
        context: Type.Optional(AuthzenContext),
      }),
      { maxItems: AUTHZEN_MAX_EVALUATIONS },
    ),
  ),
  options: Type.Optional(
    Type.Object({
      evaluations_semantic: Type.Optional(
        Type.Union([
          Type.Literal('execute_all'),
          Type.Literal('deny_on_first_deny'),
          Type.Literal('permit_on_first_permit'),
        ]),
      ),
    }),
  ),
});
export type AuthzenEvaluationsRequest = Static<typeof AuthzenEvaluationsRequest>;

/** §7.2 (or a single decision when the request carried no evaluations, §7.1). */
export const AuthzenEvaluationsResponse = Type.Union([
  Type.Object({ evaluations: Type.Array(AuthzenDecision) }),
  AuthzenDecision,
]);
export type AuthzenEvaluationsResponse = Static<typeof AuthzenEvaluationsResponse>;

/** §9.1 (and the Access Request profile §6): `GET /.well-known/authzen-configuration`. */
export const AuthzenMetadata = Type.Object({
  policy_decision_point: Type.String(),
  access_evaluation_endpoint: Type.String(),
  access_evaluations_endpoint: Type.String(),
  access_request_endpoint: Type.String(),
  jwks_uri: Type.String(),
  capabilities: Type.Array(Type.String()),
});

/**
 * Access Request and Approval Profile §10.1: the body of `POST /access/v1/requests`, a request
 * for the access a requestable denial named. Tether takes single submissions (no `items`).
 */
export const AccessRequestSubmission = Type.Object({
  subject: AuthzenSubject,
  resource: AuthzenResource,
  action: AuthzenAction,
  context: Type.Optional(
    Type.Object({
      ticket: Type.Optional(Type.String({ maxLength: 256 })),
      business_justification: Type.Optional(Type.String({ maxLength: 2048 })),
    }),
  ),
  requested_access: Type.Optional(
    Type.Object({ requested_until: Type.Optional(Type.String({ format: 'date-time' })) }),
  ),
  denial: Type.Object({
    binding_token: Type.String({ minLength: 1, maxLength: 8192 }),
    evaluation_id: Type.Optional(Type.String({ maxLength: 128 })),
    expires_at: Type.String({ format: 'date-time' }),
    evaluated_at: Type.Optional(Type.String({ maxLength: 64 })),
    reason: Type.Optional(Type.String({ maxLength: 128 })),
    template: Type.Optional(Type.String({ maxLength: 128 })),
  }),
  items: Type.Optional(
    Type.Array(Type.Unknown(), { maxItems: 0, description: 'bulk submissions are not taken' }),
  ),
});
export type AccessRequestSubmission = Static<typeof AccessRequestSubmission>;

/** §10.2, §11: a task handle, and once approved its result (§12: re-evaluate). */
export const AccessRequestTask = Type.Object({
  task: Type.Object({
    id: Type.String(),
    status: Type.Union([
      Type.Literal('pending'),
      Type.Literal('approved'),
      Type.Literal('denied'),
      Type.Literal('expired'),
      Type.Literal('cancelled'),
      Type.Literal('failed'),
    ]),
    status_endpoint: Type.String(),
    expires_at: Type.Optional(Type.String()),
    display: Type.Optional(Type.Object({ title: Type.String(), description: Type.String() })),
  }),
  result: Type.Optional(
    Type.Object({
      mode: Type.Literal('reevaluate'),
      approval: Type.Object({ id: Type.String(), approved_at: Type.String(), approved_until: Type.String() }),
    }),
  ),
});
export type AccessRequestTask = Static<typeof AccessRequestTask>;
export type AuthzenMetadata = Static<typeof AuthzenMetadata>;
