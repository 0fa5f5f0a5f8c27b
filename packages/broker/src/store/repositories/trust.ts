import type { TrustContext, TrustFact } from '../../domain/trust.js';
import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { TrustContextRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

/** The principal's own context is stored under this session id. */
const PRINCIPAL_SCOPE = '';

function fact<T>(value: T | null, at: number | null): TrustFact<T> | undefined {
  return value === null || at === null ? undefined : { value, at };
}

function toTrust(row: TrustContextRow | undefined): TrustContext {
  if (!row) return {};
  const trust: TrustContext = {};
  const device = fact(row.device_compliance, row.device_compliance_at);
  const assurance = fact(row.assurance_level, row.assurance_level_at);
  const risk = fact(row.risk_level, row.risk_level_at);
  const claims = fact(
    row.claims === null ? null : fromJson<Record<string, string>>(row.claims),
    row.claims_at,
  );
  if (device) trust.deviceCompliance = device;
  if (assurance) trust.assuranceLevel = assurance;
  if (risk) trust.riskLevel = risk;
  if (claims) trust.claims = claims;
  if (row.credential_changed_at !== null) trust.credentialChangedAt = row.credential_changed_at;
  return trust;
}

function scopeOf(sessionId: string | null): string {
  return sessionId ?? PRINCIPAL_SCOPE;
}

/** The context of a principal (`sessionId` null) or of one of its sessions; empty when nothing was reported. */
export async function findTrust(
  h: StoreHandle,
  tenantId: string,
  principalId: string,
  sessionId: string | null,
): Promise<TrustContext> {
  const row = await h.db
    .selectFrom('trust_contexts')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('principal_id', '=', principalId)
    .where('session_id', '=', scopeOf(sessionId))
    .executeTakeFirst();
  return toTrust(row);
}

/** What signals said of each of `sessionIds` (sessions without a row are left out). */
export async function findSessionsTrust(
  h: StoreHandle,
  tenantId: string,
  sessionIds: readonly string[],
): Promise<Map<string, TrustContext>> {
  const found = new Map<string, TrustContext>();
  if (sessionIds.length === 0) return found;
  const rows = await h.db
    .selectFrom('trust_contexts')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('session_id', 'in', sessionIds)
    .execute();
  for (const row of rows) found.set(row.session_id, toTrust(row));
  return found;
}

/**
 * The same, row-locked: a signal reads, merges and writes it back in one transaction. The row
 * is created first if missing, so two first signals for a principal queue on one row lock.
 */
export async function lockTrust(
  tx: TxHandle,
  tenantId: string,
  principalId: string,
  sessionId: string | null,
  at: number,
): Promise<TrustContext> {
  await tx.db
    .insertInto('trust_contexts')
    .values({
      tenant_id: tenantId,
      principal_id: principalId,
      session_id: scopeOf(sessionId),
      device_compliance: null,
      device_compliance_at: null,
      assurance_level: null,
      assurance_level_at: null,
      risk_level: null,
      risk_level_at: null,
      credential_changed_at: null,
      claims: null,
      claims_at: null,
      updated_at: at,
    })
    .onConflict((oc) => oc.columns(['tenant_id', 'principal_id', 'session_id']).doNothing())
    .execute();
  const row = await forUpdate(
    tx,
    tx.db
      .selectFrom('trust_contexts')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('principal_id', '=', principalId)
      .where('session_id', '=', scopeOf(sessionId)),
  ).executeTakeFirst();
  return toTrust(row);
}

/** Writes back a context read with {@link lockTrust}. */
export async function writeTrust(
  tx: TxHandle,
  key: { tenantId: string; principalId: string; sessionId: string | null },
  trust: TrustContext,
  at: number,
): Promise<void> {
  await tx.db
    .updateTable('trust_contexts')
    .set({
      device_compliance: trust.deviceCompliance?.value ?? null,
      device_compliance_at: trust.deviceCompliance?.at ?? null,
      assurance_level: trust.assuranceLevel?.value ?? null,
      assurance_level_at: trust.assuranceLevel?.at ?? null,
      risk_level: trust.riskLevel?.value ?? null,
      risk_level_at: trust.riskLevel?.at ?? null,
      credential_changed_at: trust.credentialChangedAt ?? null,
      claims: trust.claims ? toJson(trust.claims.value) : null,
      claims_at: trust.claims?.at ?? null,
      updated_at: at,
    })
    .where('tenant_id', '=', key.tenantId)
    .where('principal_id', '=', key.principalId)
    .where('session_id', '=', scopeOf(key.sessionId))
    .execute();
}
