import type { DecisionRecord, DecisionReport } from '@tether/protocol';
import type { AuditEntry } from '../audit/chain.js';
import { recordAudit } from '../audit/record.js';
import { isIdOf } from '../domain/ids.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import {
  findSessionLinks,
  lockOrCreatePep,
  type SessionLink,
  writePepProgress,
} from '../store/repositories/peps.js';
import { recordSessionActivity } from '../store/repositories/sessions.js';
import { requireRole } from './access-control.js';
import type { BrokerContext, Caller } from './context.js';
import type { EnforcementMetrics } from './enforcement-metrics.js';

/**
 * A PEP reports a batch of its decisions: each becomes a record of the tenant's audit chain
 * (`decision.allow` / `decision.deny`, by the PEP), all in one transaction. A decision naming
 * a session of the caller's tenant is linked to it (target, principal, ticket, request), so it
 * shows in that session's trail; a session id that is unknown or of another tenant is not
 * recorded at all, and both look the same. Decisions the PEP reports as dropped are counted on
 * its row, recorded (`pep.decisions_dropped`) and counted in the metrics: a loss is never
 * silent. A report also marks the PEP as heard from, and an allowed decision counts as activity
 * in its session (see domain/idle.ts).
 */
export async function recordDecisions(
  ctx: BrokerContext,
  caller: Caller,
  report: DecisionReport,
  metrics: EnforcementMetrics,
): Promise<{ recorded: number; dropped: number }> {
  requireRole(caller, 'pep');
  const tenantId = caller.tenant.id;
  const pepId = caller.principal.id;
  await inTransaction(ctx.store, async (tx) => {
    const now = ctx.clock.now();
    const pep = await lockOrCreatePep(tx, tenantId, pepId, now);
    await writePepProgress(tx, pepId, {
      lastAppliedSeq: pep.lastAppliedSeq,
      lastSeenAt: now,
      decisionsDropped: pep.decisionsDropped + report.dropped,
    });
    const claimed = new Set(
      report.decisions.flatMap((d) => (d.session && isIdOf('session', d.session) ? [d.session] : [])),
    );
    const links = await findSessionLinks(tx, tenantId, [...claimed]);
    // Session rows before the audit head, the order every other writer takes them in.
    await recordActivity(tx, tenantId, report.decisions, links, now);
    for (const decision of report.decisions) {
      const link = decision.session === null ? undefined : links.get(decision.session);
      await recordAudit(tx, tenantId, now, decisionEntry(pepId, decision, link));
    }
    if (report.dropped > 0) {
      await recordAudit(tx, tenantId, now, {
        actor: pepId,
        action: 'pep.decisions_dropped',
        target: pepId,
        outcome: 'failure',
        details: { count: report.dropped, total: pep.decisionsDropped + report.dropped },
      });
      tx.onCommit(() =>
        metrics.decisionsDropped({ tenant: caller.tenant.name, name: caller.principal.name }, report.dropped),
      );
    }
  });
  return { recorded: report.decisions.length, dropped: report.dropped };
}

/**
 * An allowed decision is activity in its session (it postpones an idle timeout): each session
 * of the tenant that a decision allowed moves to its latest such decision, as the PEP dated it
 * but never past the broker's clock. One update per session, in id order, so that concurrent
 * reports lock the rows in the same order.
 */
async function recordActivity(
  tx: TxHandle,
  tenantId: string,
  decisions: readonly DecisionRecord[],
  links: ReadonlyMap<string, SessionLink>,
  now: number,
): Promise<void> {
  const latest = new Map<string, number>();
  for (const d of decisions) {
    const link = d.allow && d.session !== null ? links.get(d.session) : undefined;
    if (!link) continue;
    const at = Math.min(d.at, now);
    latest.set(link.id, Math.max(latest.get(link.id) ?? at, at));
  }
  const inOrder = [...latest].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [id, at] of inOrder) await recordSessionActivity(tx, tenantId, id, at);
}

/** One decision as an audit record; the query string of the path is never kept (it may hold secrets). */
function decisionEntry(pepId: string, d: DecisionRecord, link: SessionLink | undefined): AuditEntry {
  return {
    actor: pepId,
    action: d.allow ? 'decision.allow' : 'decision.deny',
    target: link ? link.id : d.resource,
    outcome: d.allow ? 'success' : 'refused',
    requestId: link?.requestId ?? null,
    ticket: link?.ticket ?? null,
    principalId: link?.principalId ?? null,
    details: {
      code: d.code,
      action: d.action,
      resource: d.resource,
      decided_at: new Date(d.at).toISOString(),
      ...(d.method === undefined ? {} : { method: d.method }),
      ...(d.path === undefined ? {} : { path: d.path.replace(/[?#].*$/s, '') }),
    },
  };
}
