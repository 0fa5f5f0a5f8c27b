/**
 * The Cedar schema every Tether policy is validated and evaluated against.
 *
 * Inlined rather than read from `schema.cedarschema` at load time because the build (`tsc`)
 * does not copy non-TypeScript files to `dist`. `schema.cedarschema` is the documentation
 * copy; `cedar.test.ts` asserts that the two are identical.
 */
export const CEDAR_SCHEMA = `// Tether policy schema (Cedar human-readable schema syntax).
//
// Documentation copy: the broker uses the identical text inlined in schema.ts
// (tsc does not copy this file to dist); a test keeps the two in sync.
//
// Adjustment forced by Cedar: RequestContext.ticket is a REQUIRED String (the empty
// string when the request carries no ticket) rather than an optional "ticket?: String".
// Strict validation only accepts context.ticket after a "context has ticket" guard, so
// the intended shape
//     context.has_ticket && context.ticket like "CHG-*"
// would be refused if ticket were optional. Test presence with context.has_ticket;
// "context has ticket" is always true.
namespace Tether {
  // A set of principals; membership is tested with: principal in Tether::Group::"<id>"
  entity Group;

  // Who acts. kind is one of human | service | pipeline | agent | workload.
  // Tags are free-form principal attributes:
  //     principal.hasTag("team") && principal.getTag("team") == "netops"
  entity Principal in [Group] {
    name: String,
    kind: String,
    enabled: Bool,
  } tags String;

  // What is asked for. Tags are free-form privilege attributes.
  entity Privilege {
    name: String,
  } tags String;

  // hour (0-23) and weekday (0-6, 0 = Sunday) are computed in the tenant's time zone.
  // requester is who asked for the access: for request and auto_approve it is the
  // principal itself; for approve the principal is the approver.
  type RequestContext = {
    ticket: String,
    has_ticket: Bool,
    duration_seconds: Long,
    reason: String,
    hour: Long,
    weekday: Long,
    principal_kind: String,
    requester: Principal,
  };

  action request, approve, auto_approve, continue appliesTo {
    principal: Principal,
    resource: Privilege,
    context: RequestContext,
  };
}
`;
