import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { enqueueReevaluation } from '../evaluation/jobs.js';
import { validatePolicySet } from '../policy/cedar.js';
import { inTransaction } from '../store/database.js';
import {
  appendPolicyVersion,
  currentPolicyVersion,
  findPolicyVersion,
  listPolicyVersions,
  type PolicyVersion,
} from '../store/repositories/policies.js';

/** Refuses an invalid set with the engine's messages; stores nothing. */
export function assertValidPolicySet(policies: Record<string, string>): void {
  const validation = validatePolicySet(policies);
  if (!validation.ok) {
    throw new TetherError('policy_invalid', validation.errors.join('\n'), {
      extra: { errors: validation.errors },
    });
  }
}

/** Replaces the tenant's policy set with a new version, validated against the schema first. */
export async function replacePolicySet(
  ctx: BrokerContext,
  caller: Caller,
  policies: Record<string, string>,
): Promise<PolicyVersion> {
  requireRole(caller, 'admin');
  assertValidPolicySet(policies);
  const now = ctx.clock.now();
  const version = await inTransaction(ctx.store, async (tx) => {
    const v = await appendPolicyVersion(tx, caller.tenant.id, policies, caller.principal.id, now);
    // Every live session of the tenant is judged again under the new set, in batches, after commit.
    await enqueueReevaluation(
      ctx,
      tx,
      caller.tenant.id,
      {},
      {
        kind: 'policy_replaced',
        version: v,
        by: caller.principal.id,
      },
    );
    await recordAudit(tx, caller.tenant.id, now, {
      actor: caller.principal.id,
      action: 'policy.replaced',
      target: `policy-set:${v}`,
      outcome: 'success',
      policies: Object.keys(policies),
      details: { version: v },
    });
    return v;
  });
  return { tenantId: caller.tenant.id, version, policies, createdBy: caller.principal.id, createdAt: now };
}

export async function getCurrentPolicySet(ctx: BrokerContext, caller: Caller): Promise<PolicyVersion> {
  return (
    (await currentPolicyVersion(ctx.store, caller.tenant.id)) ?? {
      tenantId: caller.tenant.id,
      version: 0,
      policies: {},
      createdBy: '',
      createdAt: 0,
    }
  );
}

export async function getPolicyVersion(
  ctx: BrokerContext,
  caller: Caller,
  version: number,
): Promise<PolicyVersion> {
  const found = await findPolicyVersion(ctx.store, caller.tenant.id, version);
  if (!found) throw new TetherError('not_found', `no policy version ${version}`);
  return found;
}

export async function policyHistory(ctx: BrokerContext, caller: Caller) {
  return listPolicyVersions(ctx.store, caller.tenant.id);
}
