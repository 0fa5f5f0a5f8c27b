import { type DecisionRecord, type DecisionReport, TetherError } from '@tether-broker/protocol';
import type { AuditEntry } from '../audit/chain.js';
import { recordAudit } from '../audit/record.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { isIdOf } from '../domain/ids.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import {
  findSessionLinks,
  listPepAudiences,
  lockOrCreatePep,
  type SessionLink,
  writePepProgress,
} from '../store/repositories/peps.js';
import { listPrincipalKeys } from '../store/repositories/principals.js';
import { recordSessionActivity } from '../store/repositories/sessions.js';
import { countBudgetedCalls } from './call-budgets.js';
import type { EnforcementMetrics } from './enforcement-metrics.js';

/**
 * A PEP reports a batch of its decisions: each becomes a record of the tenant's audit chain
 * (`decision.allow` / `decision.deny`, by the PEP), all in one transaction. A decision naming
 * a session of the caller's tenant is linked to it (target, principal, ticket, request), so it
 * shows in that session's trail; a session id that is unknown or of another tenant is not
 * recorded at all, and both look the same. Decisions the PEP reports as dropped are counted on
 * its row, recorded (`pep.decisions_dropped`) and counted in the metrics: a loss is never
 * silent. A report also marks the PEP as heard from.
 *
 * A PEP speaks only for what it enforces. The batch names its `audience`, which must be one an
 * admin set for the PEP's principal (`PUT /v1/peps/:pep/audiences`); an allowed decision must
 * name a session whose grant has that audience (a genuine PEP verified the token's `aud`). The
 * batch is atomic: one decision outside that refuses it whole (`audience_not_enforced`) and
 * nothing is written, so a forged "allowed" cannot hide among real ones. A denial naming a
 * session not for the audience (a token narrowed away from it) is recorded unlinked, like an
 * unknown session.
 *
 * Allowed decisions count as activity in their sessions (see domain/idle.ts) only when the
 * batch is signed by the PEP's own registered key: see {@link signedByPepKey}.
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
  const audience = report.audience;
  if (!(await listPepAudiences(ctx.store, pepId)).includes(audience))
    throw new TetherError(
      'audience_not_enforced',
      `this enforcement point is not registered for audience ${JSON.stringify(audience)}`,
    );
  const signed = await signedByPepKey(ctx, caller);
  await inTransaction(ctx.store, async (tx) => {
    const now = ctx.clock.now();
    const claimed = new Set(
      report.decisions.flatMap((d) => (d.session && isIdOf('session', d.session) ? [d.session] : [])),
    );
    const found = await findSessionLinks(tx, tenantId, [...claimed]);
    // Checked before anything is written: a refused batch leaves no trace but the refusal.
    for (const d of report.decisions) {
      const link = d.allow && d.session !== null ? found.get(d.session) : undefined;
      if (link && !link.audiences.includes(audience))
        throw new TetherError(
          'audience_not_enforced',
          `an allowed decision names a session that is not for audience ${JSON.stringify(audience)}`,
        );
    }
    const links = new Map([...found].filter(([, link]) => link.audiences.includes(audience)));
    const pep = await lockOrCreatePep(tx, tenantId, pepId, now);
    await writePepProgress(tx, pepId, {
      lastAppliedSeq: pep.lastAppliedSeq,
      lastSeenAt: now,
      decisionsDropped: pep.decisionsDropped + report.dropped,
    });
    // Session rows before the audit head, the order every other writer takes them in.
    if (signed) await recordActivity(tx, tenantId, report.decisions, links, now);
    await countBudgetedCalls(ctx, tx, tenantId, pepId, report.decisions, new Set(links.keys()), now);
    const unlinkedDenials: DecisionRecord[] = [];
    for (const decision of report.decisions) {
      const link = decision.session === null ? undefined : links.get(decision.session);
      if (!link && !decision.allow) unlinkedDenials.push(decision);
      else await recordAudit(tx, tenantId, now, decisionEntry(pepId, decision, link));
    }
    for (const entry of countedDenials(pepId, audience, unlinkedDenials))
      await recordAudit(tx, tenantId, now, entry);
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
 * Whether the report is signed by the PEP's own key: it authenticated a DPoP-bound token with a
 * proof (single-use, bound to this method, URL and token) made by a key registered to the PEP's
 * principal now. Only the PEP holds that private key, so such a batch comes from the PEP
 * itself; a Bearer token, or a DPoP-bound one whose proof key is not the PEP's (an ephemeral
 * key, as the SDK uses), proves only that someone holds the token. Decisions arriving that way
 * are still recorded, but keep no session alive: a stolen token cannot stop an idle timeout.
 */
async function signedByPepKey(ctx: BrokerContext, caller: Caller): Promise<boolean> {
  const jkt = caller.proof?.jkt;
  if (jkt === undefined) return false;
  return (await listPrincipalKeys(ctx.store, caller.principal.id)).some((k) => k.kid === jkt);
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

/** Distinct examples kept in a counted record: enough to see what was tried, bounded whatever was sent. */
const SAMPLES = 5;

/**
 * Denials that name no session of the tenant (no token, a forged or foreign one) are what a
 * flood at a gateway produces: they are counted, one record per refusal code per batch with
 * the count, the time span and a few distinct examples, so two thousand unauthenticated
 * requests cost a handful of audit records, not two thousand. Denials of real sessions keep a
 * record each, in their session's trail.
 */
function countedDenials(pepId: string, audience: string, denials: readonly DecisionRecord[]): AuditEntry[] {
  const byCode = new Map<string, DecisionRecord[]>();
  for (const d of denials) byCode.set(d.code, [...(byCode.get(d.code) ?? []), d]);
  return [...byCode].map(([code, group]) => {
    const sample = (values: (string | undefined)[]) =>
      [...new Set(values.filter((v): v is string => v !== undefined))].slice(0, SAMPLES);
    const times = group.map((d) => d.at);
    return {
      actor: pepId,
      action: 'decision.deny',
      target: audience,
      outcome: 'refused',
      requestId: null,
      ticket: null,
      principalId: null,
      details: {
        code,
        count: group.length,
        first_decided_at: new Date(Math.min(...times)).toISOString(),
        last_decided_at: new Date(Math.max(...times)).toISOString(),
        methods: sample(group.map((d) => d.method)),
        paths: sample(group.map((d) => d.path?.replace(/[?#].*$/s, ''))),
        resources: sample(group.map((d) => d.resource)),
      },
    };
  });
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
