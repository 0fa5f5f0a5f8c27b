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

  // One resource of a session's grant, as continue sees it (context.entitlement_resource):
  // name is the resource as the privilege lists it, and each "/"-separated segment is a tag
  // named by its position from 1 ("k8s/team-a/*" has tags "1" = "k8s", "2" = "team-a",
  // "3" = "*"), so a policy can compare a part of it with a principal tag:
  //     context.entitlement_resource.hasTag("2")
  //       && context.entitlement_resource.getTag("2") == principal.getTag("claim:ns")
  entity Resource {
    name: String,
  } tags String;

  // The request's ticket as the ticket register knows it (fed by signed webhooks). Absent
  // when the register does not know the ticket, so test for it first:
  //     context has ticket_info && context.ticket_info.state == "open"
  //       && context.ticket_info.assigned_to_requester
  type TicketInfo = {
    source: String,
    state: String,
    title: String,
    assignees: Set<String>,
    assigned_to_requester: Bool,
  };

  // is_extension: the request asks for more time for a live session the requester holds
  // (tether session extend); extension_seconds is the time it adds (0 when not an extension)
  // and duration_seconds the session's whole length once extended, so a limit such as
  //     context.duration_seconds <= 3600
  // holds for a session however it got its time.
  // hour (0-23) and weekday (0-6, 0 = Sunday) are computed in the tenant's time zone.
  // requester is who asked for the access: for request and auto_approve it is the
  // principal itself; for approve the principal is the approver.
  // Present when the requester is a provider operator's seat asking under a relationship
  // (the MSP model): the relationship, the provider tenant's name, and the operator's groups
  // there that the relationship names. Test for it first:
  //     context has relationship && context.relationship.provider == "acme-msp"
  type Relationship = {
    id: String,
    name: String,
    provider: String,
    provider_groups: Set<String>,
  };

  type RequestContext = {
    ticket: String,
    has_ticket: Bool,
    ticket_info?: TicketInfo,
    duration_seconds: Long,
    is_extension: Bool,
    extension_seconds: Long,
    reason: String,
    hour: Long,
    weekday: Long,
    principal_kind: String,
    requester: Principal,
    relationship?: Relationship,
  };

  action request, approve, auto_approve appliesTo {
    principal: Principal,
    resource: Privilege,
    context: RequestContext,
  };

  // What CAEP signals have reported about the principal, and about the session itself when a
  // signal named it. A fact no transmitter has reported reads "unknown".
  //   device_compliance   compliant | not-compliant | unknown
  //   assurance_level     the level as the identity provider reports it (e.g. nist-aal2) | unknown
  //   risk_level          low | medium | high | unknown
  //   credential_changed  a credential of the principal changed after the session started
  //   claims              "name=value" for each claim of the latest token-claims-change
  type Trust = {
    device_compliance: String,
    assurance_level: String,
    risk_level: String,
    credential_changed: Bool,
    claims: Set<String>,
  };

  // Continuous evaluation asks continue for each action a live session holds, whenever
  // something the session depends on changes (a signal, a principal, group, privilege, policy
  // or ticket change), at activation and at every refresh. The session keeps the actions
  // continue permits; with none left it ends. Tether permits continue itself unless a forbid
  // applies (the principal must still be permitted to request the privilege), so write forbids:
  //     forbid(principal, action == Tether::Action::"continue", resource)
  //       when { resource.hasTag("requires_compliant_device")
  //         && context.trust.device_compliance == "not-compliant" };
  //     forbid(principal, action == Tether::Action::"continue", resource)
  //       when { context.trust.risk_level == "high" && context.entitlement_action like "*:write*" };
  // The context is the request's (keep the fields below in step with RequestContext, including
  // the relationship of a provider operator's session), the trust context, and
  // entitlement_action: the action of the grant being asked about.
  // When some policy of the set names entitlement_resource, continue is also asked for each
  // resource of the grant with each action the session keeps (entitlement_resource present):
  // the session keeps the resources permitted with every one of them, and ends with none.
  //     forbid(principal, action == Tether::Action::"continue", resource)
  //       when { context has entitlement_resource
  //         && context.entitlement_resource.name like "prod/*" && context.trust.risk_level != "low" };
  type ContinueContext = {
    ticket: String,
    has_ticket: Bool,
    ticket_info?: TicketInfo,
    duration_seconds: Long,
    is_extension: Bool,
    extension_seconds: Long,
    reason: String,
    hour: Long,
    weekday: Long,
    principal_kind: String,
    requester: Principal,
    trust: Trust,
    entitlement_action: String,
    entitlement_resource?: Resource,
    relationship?: Relationship,
  };

  action continue appliesTo {
    principal: Principal,
    resource: Privilege,
    context: ContinueContext,
  };
}
`;
