import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { resolvePrincipal } from '../core/resolve.js';
import { hasRole, type Principal } from '../domain/principal.js';
import { inTransaction, type StoreHandle } from '../store/database.js';
import { listPepAudiences, replacePepAudiences } from '../store/repositories/peps.js';

/** A PEP principal and the audiences it enforces. */
export interface PepAudiences {
  principal: Principal;
  audiences: string[];
}

/** The PEP principal a request names: a principal of the caller's tenant with the `pep` role. */
async function resolvePep(h: StoreHandle, caller: Caller, ref: string): Promise<Principal> {
  const principal = await resolvePrincipal(h, caller.tenant.id, ref);
  if (!hasRole(principal, 'pep'))
    throw new TetherError('invalid_request', `principal ${JSON.stringify(principal.name)} has no pep role`);
  return principal;
}

/**
 * The audiences a PEP enforces, for admins and auditors, and for the PEP itself (its own
 * only). A PEP records decisions only for these audiences (see record-decisions.ts).
 */
export async function getPepAudiences(
  ctx: BrokerContext,
  caller: Caller,
  ref: string,
): Promise<PepAudiences> {
  const self = ref === caller.principal.id || ref === caller.principal.name;
  if (!self) requireRole(caller, 'admin', 'auditor');
  const principal = await resolvePep(ctx.store, caller, ref);
  return { principal, audiences: await listPepAudiences(ctx.store, principal.id) };
}

/**
 * Sets the audiences a PEP enforces (admins only; the whole list, replaced, audited). The
 * broker cannot see which audience a PEP process is configured with, so it is an admin who
 * says which sessions a PEP may speak about: without this, any PEP of the tenant could record
 * an "allowed" decision for any of its sessions and keep it from idling out.
 */
export async function setPepAudiences(
  ctx: BrokerContext,
  caller: Caller,
  ref: string,
  audiences: readonly string[],
): Promise<PepAudiences> {
  requireRole(caller, 'admin');
  const wanted = [...new Set(audiences)].sort();
  return inTransaction(ctx.store, async (tx) => {
    const principal = await resolvePep(tx, caller, ref);
    const before = await listPepAudiences(tx, principal.id);
    const now = ctx.clock.now();
    await replacePepAudiences(tx, caller.tenant.id, principal.id, wanted, now);
    await recordAudit(tx, caller.tenant.id, now, {
      actor: caller.principal.id,
      action: 'pep.audiences_set',
      target: principal.id,
      outcome: 'success',
      principalId: principal.id,
      details: { before, after: wanted },
    });
    return { principal, audiences: wanted };
  });
}
