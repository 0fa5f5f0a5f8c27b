import { createHash } from 'node:crypto';
import canonicalizeModule from 'canonicalize';
import type { BrokerConfig } from '../config/config.js';
import { inTransaction, type StoreHandle } from '../store/database.js';
import { recordAuditInEveryTenant } from './record.js';

const canonicalize = canonicalizeModule as unknown as (input: unknown) => string | undefined;

/**
 * Settings that may differ between replicas of one broker without changing what it enforces:
 * where it listens and logs. Everything else is recorded when it changes.
 */
const PER_REPLICA = new Set<string>(['host', 'port', 'dataDir', 'logLevel']);

/**
 * Text settings recorded by value. Any other text setting (the KEK, the database URL, a metrics
 * token, TLS material, and whatever text setting comes next) may be or hold a secret: it is
 * recorded by a short digest, so that a change shows without its value.
 */
const PLAIN_TEXT = new Set<string>(['publicUrl', 'dpopNonce']);

/** The settings as recorded. */
function recordable(config: BrokerConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(config).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (PER_REPLICA.has(name) || value === undefined) continue;
    out[name] =
      typeof value === 'string' && !PLAIN_TEXT.has(name)
        ? `sha256:${createHash('sha256').update(String(value)).digest('hex').slice(0, 16)}`
        : value;
  }
  return out;
}

/**
 * At start: when the broker's settings differ from those last recorded, records
 * `broker.settings_changed` in every tenant's chain with what changed (from → to), and keeps the
 * new settings' digest. A replica started with the same settings records nothing.
 */
export async function recordSettingsChange(
  store: StoreHandle,
  config: BrokerConfig,
  now: number,
): Promise<boolean> {
  const settings = recordable(config);
  const text = canonicalize(settings) ?? '{}';
  const digest = createHash('sha256').update(text).digest('hex');
  return inTransaction(store, async (tx) => {
    const last = await tx.db
      .selectFrom('audited_settings')
      .selectAll()
      .where('id', '=', 'broker')
      .executeTakeFirst();
    if (last?.digest === digest) return false;
    const before = last ? (JSON.parse(last.settings) as Record<string, unknown>) : {};
    const changed: Record<string, { from: unknown; to: unknown }> = {};
    for (const name of new Set([...Object.keys(before), ...Object.keys(settings)])) {
      const from = before[name] ?? null;
      const to = settings[name] ?? null;
      if (canonicalize(from) !== canonicalize(to)) changed[name] = { from, to };
    }
    await recordAuditInEveryTenant(tx, now, {
      actor: 'broker',
      action: 'broker.settings_changed',
      target: 'broker',
      outcome: 'success',
      details: { changed, first: last === undefined },
    });
    await tx.db
      .insertInto('audited_settings')
      .values({ id: 'broker', digest, settings: text, at: now })
      .onConflict((oc) => oc.column('id').doUpdateSet({ digest, settings: text, at: now }))
      .execute();
    return true;
  });
}
