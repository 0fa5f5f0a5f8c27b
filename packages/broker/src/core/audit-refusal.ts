import type { AuditEntry } from '../audit/chain.js';
import { recordAudit, recordAuditBatch } from '../audit/record.js';
import { inTransaction } from '../store/database.js';
import type { BrokerContext } from './context.js';
import { currentSource } from './request-source.js';

type RefusalEntry = Omit<AuditEntry, 'outcome'>;

/**
 * Records a refused attempt in its own transaction: the attempt changed nothing, but who
 * tried what, and why it was refused, belongs in the audit trail.
 *
 * Refused authentications (`auth.*`) are counted rather than recorded one by one, since anyone
 * who can replay a signed assertion can repeat them at will: per (tenant, source address,
 * action, actor, reason) and window of `limits.windowSeconds`, the first attempt is recorded at
 * once (`count: 1`), and the ones after it in the same window become one record carrying their
 * `count`, written when the window ends or the broker stops. A crash loses those counts of the
 * current window (never the first attempt's record).
 */
export async function recordRefusal(
  ctx: BrokerContext,
  tenantId: string,
  entry: RefusalEntry,
): Promise<void> {
  const source = currentSource();
  if (!entry.action.startsWith('auth.')) {
    await writeRefusals(ctx, tenantId, [{ ...entry, details: { ...entry.details, source } }]);
    return;
  }
  await aggregatorOf(ctx).count(tenantId, source, entry);
}

/** Writes every refusal still counted; the app calls it when it closes, before the store does. */
export async function flushRefusals(ctx: BrokerContext): Promise<void> {
  const aggregator = aggregators.get(ctx);
  if (aggregator) await aggregator.close();
}

/** Writes the counted refusals whose window has ended (also done on a timer). */
export async function flushDueRefusals(ctx: BrokerContext): Promise<void> {
  await aggregators.get(ctx)?.flushDue();
}

/** Keys tracked at once; past it every counted refusal is written early rather than held. */
const MAX_TRACKED = 10_000;

interface Window {
  start: number;
  /** Attempts after the first in this window, not yet written. */
  pending?: {
    tenantId: string;
    entry: RefusalEntry;
    source: string;
    count: number;
    firstAt: number;
    lastAt: number;
  };
}

const aggregators = new WeakMap<BrokerContext, RefusalAggregator>();

function aggregatorOf(ctx: BrokerContext): RefusalAggregator {
  let aggregator = aggregators.get(ctx);
  if (!aggregator) {
    aggregator = new RefusalAggregator(ctx);
    aggregators.set(ctx, aggregator);
  }
  return aggregator;
}

class RefusalAggregator {
  private readonly windows = new Map<string, Window>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ctx: BrokerContext) {}

  private get windowMs(): number {
    return this.ctx.config.limits.windowSeconds * 1000;
  }

  async count(tenantId: string, source: string, entry: RefusalEntry): Promise<void> {
    const now = this.ctx.clock.now();
    const reason = typeof entry.details?.reason === 'string' ? entry.details.reason.slice(0, 200) : '';
    const key = JSON.stringify([tenantId, source, entry.action, entry.actor, reason]);
    const open = this.windows.get(key);
    if (open && now < open.start + this.windowMs) {
      // Counted synchronously, before any await: concurrent attempts never lose a count.
      if (open.pending) {
        open.pending.count += 1;
        open.pending.lastAt = now;
      } else {
        open.pending = { tenantId, entry, source, count: 1, firstAt: now, lastAt: now };
      }
      this.ensureTimer();
      if (this.windows.size > MAX_TRACKED) await this.flush(() => true);
      return;
    }
    this.windows.delete(key);
    this.windows.set(key, { start: now });
    if (open?.pending) await this.write([open.pending]);
    await writeRefusals(this.ctx, tenantId, [{ ...entry, details: { ...entry.details, source, count: 1 } }]);
  }

  async flushDue(): Promise<void> {
    const now = this.ctx.clock.now();
    await this.flush((w) => now >= w.start + this.windowMs);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush(() => true);
  }

  /** Takes the matching windows out of the map first, so a count arriving meanwhile opens a new one. */
  private async flush(due: (w: Window) => boolean): Promise<void> {
    const pending: NonNullable<Window['pending']>[] = [];
    for (const [key, w] of this.windows) {
      if (!due(w)) continue;
      this.windows.delete(key);
      if (w.pending) pending.push(w.pending);
    }
    if (pending.length > 0) await this.write(pending);
  }

  private async write(pending: NonNullable<Window['pending']>[]): Promise<void> {
    const byTenant = new Map<string, RefusalEntry[]>();
    for (const p of pending) {
      const entries = byTenant.get(p.tenantId) ?? [];
      entries.push({
        ...p.entry,
        details: {
          ...p.entry.details,
          source: p.source,
          count: p.count,
          first_at: new Date(p.firstAt).toISOString(),
          last_at: new Date(p.lastAt).toISOString(),
        },
      });
      byTenant.set(p.tenantId, entries);
    }
    for (const [tenantId, entries] of byTenant) await writeRefusals(this.ctx, tenantId, entries);
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flushDue(), Math.min(this.windowMs, 5000));
    this.timer.unref();
  }
}

async function writeRefusals(ctx: BrokerContext, tenantId: string, entries: RefusalEntry[]): Promise<void> {
  const refused = entries.map((e) => ({ ...e, outcome: 'refused' as const }));
  try {
    await inTransaction(ctx.store, async (tx) => {
      if (refused.length === 1 && refused[0]) await recordAudit(tx, tenantId, ctx.clock.now(), refused[0]);
      else await recordAuditBatch(tx, tenantId, ctx.clock.now(), refused);
    });
  } catch (err) {
    const lost = entries.reduce(
      (n, e) => n + (typeof e.details?.count === 'number' ? e.details.count : 1),
      0,
    );
    ctx.logger.error(
      { err, actions: [...new Set(entries.map((e) => e.action))], attempts: lost },
      'could not record refusals in the audit chain',
    );
  }
}
