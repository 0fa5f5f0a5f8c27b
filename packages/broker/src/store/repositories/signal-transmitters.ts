import type { SignalTransmitter } from '../../domain/transmitter.js';
import type { StoreHandle, TxHandle } from '../database.js';
import type { SignalTransmitterRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

function toTransmitter(row: SignalTransmitterRow): SignalTransmitter {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    issuer: row.issuer,
    audience: row.audience,
    jwksUri: row.jwks_uri,
    jwks: row.jwks === null ? null : fromJson<{ keys: Record<string, unknown>[] }>(row.jwks),
    createdBy: row.created_by,
    createdAt: row.created_at,
  };
}

export async function insertTransmitter(tx: TxHandle, t: SignalTransmitter): Promise<void> {
  await tx.db
    .insertInto('signal_transmitters')
    .values({
      id: t.id,
      tenant_id: t.tenantId,
      name: t.name,
      issuer: t.issuer,
      audience: t.audience,
      jwks_uri: t.jwksUri,
      jwks: t.jwks === null ? null : toJson(t.jwks),
      created_by: t.createdBy,
      created_at: t.createdAt,
    })
    .execute();
}

export async function deleteTransmitter(tx: TxHandle, tenantId: string, id: string): Promise<boolean> {
  const result = await tx.db
    .deleteFrom('signal_transmitters')
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return Number(result.numDeletedRows) === 1;
}

export async function findTransmitter(
  h: StoreHandle,
  tenantId: string,
  ref: { id: string } | { name: string },
): Promise<SignalTransmitter | undefined> {
  let q = h.db.selectFrom('signal_transmitters').selectAll().where('tenant_id', '=', tenantId);
  q = 'id' in ref ? q.where('id', '=', ref.id) : q.where('name', '=', ref.name);
  const row = await q.executeTakeFirst();
  return row && toTransmitter(row);
}

export async function listTransmitters(h: StoreHandle, tenantId: string): Promise<SignalTransmitter[]> {
  const rows = await h.db
    .selectFrom('signal_transmitters')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('name')
    .execute();
  return rows.map(toTransmitter);
}

/** Every registration, in any tenant, for SETs of `issuer` (a SET is matched to one by its audience). */
export async function findTransmittersByIssuer(h: StoreHandle, issuer: string): Promise<SignalTransmitter[]> {
  const rows = await h.db
    .selectFrom('signal_transmitters')
    .selectAll()
    .where('issuer', '=', issuer)
    .orderBy('id')
    .limit(64)
    .execute();
  return rows.map(toTransmitter);
}

export async function transmitterIssuerAudienceTaken(
  h: StoreHandle,
  issuer: string,
  audience: string,
): Promise<boolean> {
  const row = await h.db
    .selectFrom('signal_transmitters')
    .select('id')
    .where('issuer', '=', issuer)
    .where('audience', '=', audience)
    .executeTakeFirst();
  return row !== undefined;
}

/** Remembers an accepted SET's id; throws a unique violation when it was accepted before (a replay). */
export async function insertSeenSetJti(
  tx: TxHandle,
  seen: { tenantId: string; issuer: string; jti: string; expiresAt: number },
): Promise<void> {
  await tx.db
    .insertInto('signal_jtis')
    .values({ tenant_id: seen.tenantId, issuer: seen.issuer, jti: seen.jti, expires_at: seen.expiresAt })
    .execute();
}

export async function pruneSeenSetJtis(h: StoreHandle, now: number): Promise<number> {
  const result = await h.db.deleteFrom('signal_jtis').where('expires_at', '<', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}
