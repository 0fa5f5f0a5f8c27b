/**
 * The demo tenant's Cedar policies: operators may ask for firewall access with a ticket and
 * one approval, for a recorded support shell, and for the demo database's maintenance (when there
 * is one); approvers approve others' requests; the pipeline may deploy, and is
 * approved automatically inside its business rules (a change ticket, half an hour at most).
 */
export const DEMO_POLICIES: Record<string, string> = {
  'operators-request-firewall': `@id("operators-request-firewall")
permit(principal in Tether::Group::"operators", action == Tether::Action::"request", resource)
when { resource.name == "firewall-admin" && context.has_ticket };`,
  'operators-request-db': `@id("operators-request-db")
permit(principal in Tether::Group::"operators", action == Tether::Action::"request", resource)
when { resource.name == "db-maintenance" && context.has_ticket };`,
  'operators-request-support': `@id("operators-request-support")
permit(principal in Tether::Group::"operators", action == Tether::Action::"request", resource)
when { resource.name == "support-shell" && context.has_ticket };`,
  'approvers-approve': `@id("approvers-approve")
permit(principal in Tether::Group::"approvers", action == Tether::Action::"approve", resource)
when { principal != context.requester };`,
  'pipeline-request-deploy': `@id("pipeline-request-deploy")
permit(principal, action == Tether::Action::"request", resource)
when { principal.kind == "pipeline" && resource.name == "deploy" };`,
  'pipeline-auto-deploy': `@id("pipeline-auto-deploy")
permit(principal, action == Tether::Action::"auto_approve", resource)
when { principal.kind == "pipeline" && resource.name == "deploy" && context.has_ticket && context.ticket like "CHG-*" && context.duration_seconds <= 1800 };`,
};
