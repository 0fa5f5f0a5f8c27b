import type { BrokerContext, Caller } from '../core/context.js';
import { DEFAULT_DURATION_S } from '../core/decide-request.js';
import { askPolicy } from '../core/policy-facts.js';
import type { Privilege } from '../domain/privilege.js';
import { listPrivileges } from '../store/repositories/privileges.js';

/**
 * The tenant's privileges the caller may request, as far as the tenant's policies decide
 * before a request exists: the Cedar `request` action asked for each privilege, without a
 * ticket, with the default duration and an empty reason. A policy that wants a particular
 * ticket, reason or shorter duration can still refuse the request itself (`not_eligible`);
 * one that forbids on those facts can hide a privilege the caller could ask for with them.
 * The request's own decision (`decideRequest`) stays the only one that counts.
 */
export async function eligiblePrivileges(ctx: BrokerContext, caller: Caller): Promise<Privilege[]> {
  const privileges = await listPrivileges(ctx.store, caller.tenant.id);
  const eligible: Privilege[] = [];
  for (const privilege of privileges) {
    const decision = await askPolicy(ctx, ctx.store, {
      action: 'request',
      actor: caller.principal,
      requester: caller.principal,
      privilege,
      ticket: null,
      durationSeconds: Math.min(DEFAULT_DURATION_S, privilege.maxDurationSeconds),
      reason: '',
      timeZone: caller.tenant.timeZone,
    });
    if (decision.allowed) eligible.push(privilege);
  }
  return eligible;
}
