import type { Federation, FederationAlgorithm, MappingRule } from '../../domain/federation.js';
import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { FederatedRequestRow, FederationRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

function toFederation(row: FederationRow): Federation {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    issuer: row.issuer,
    audience: row.audience,
    jwksUri: row.jwks_uri,
    jwks: row.jwks === null ? null : fromJson<{ keys: Record<string, unknown>[] }>(row.jwks),
    algorithms: fromJson<FederationAlgorithm[]>(row.algorithms),
    principalMapping: fromJson<MappingRule[]>(row.principal_mapping),
    contextClaims: fromJson<string[]>(row.context_claims),
    taskClaim: row.task_claim,
    maxTokenAgeSeconds: row.max_token_age_s,
    endsWithSubjectToken: row.ends_with_subject_token === 1,
    createdAt: row.created_at,
  };
}

export async function insertFederation(h: StoreHandle, f: Federation): Promise<void> {
  await h.db
    .insertInto('federations')
    .values({
      id: f.id,
      tenant_id: f.tenantId,
      name: f.name,
      issuer: f.issuer,
      audience: f.audience,
      jwks_uri: f.jwksUri,
      jwks: f.jwks === null ? null : toJson(f.jwks),
      algorithms: toJson(f.algorithms),
      principal_mapping: toJson(f.principalMapping),
      context_claims: toJson(f.contextClaims),
      task_claim: f.taskClaim,
      max_token_age_s: f.maxTokenAgeSeconds,
      created_at: f.createdAt,
      ends_with_subject_token: f.endsWithSubjectToken ? 1 : 0,
    })
    .execute();
}

export async function deleteFederation(h: StoreHandle, tenantId: string, id: string): Promise<void> {
  await h.db.deleteFrom('federations').where('tenant_id', '=', tenantId).where('id', '=', id).execute();
}

export async function findFederation(
  h: StoreHandle,
  tenantId: string,
  id: string,
): Promise<Federation | undefined> {
  const row = await h.db
    .selectFrom('federations')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row && toFederation(row);
}

export async function findFederationByName(
  h: StoreHandle,
  tenantId: string,
  name: string,
): Promise<Federation | undefined> {
  const row = await h.db
    .selectFrom('federations')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('name', '=', name)
    .executeTakeFirst();
  return row && toFederation(row);
}

/** Locks a trust record for the length of a transaction that acts on its say-so. */
export async function lockFederation(tx: TxHandle, id: string): Promise<Federation | undefined> {
  const row = await forUpdate(
    tx,
    tx.db.selectFrom('federations').selectAll().where('id', '=', id),
  ).executeTakeFirst();
  return row && toFederation(row);
}

export async function listFederations(h: StoreHandle, tenantId: string): Promise<Federation[]> {
  const rows = await h.db
    .selectFrom('federations')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('name')
    .execute();
  return rows.map(toFederation);
}

/**
 * Any tenant: the trust records for this issuer whose audience is one of `audiences`, for the
 * exchange (whose caller names no tenant). (issuer, audience) is unique, so one per audience.
 */
export async function findFederationsFor(
  h: StoreHandle,
  issuer: string,
  audiences: readonly string[],
): Promise<Federation[]> {
  if (audiences.length === 0) return [];
  const rows = await h.db
    .selectFrom('federations')
    .selectAll()
    .where('issuer', '=', issuer)
    .where('audience', 'in', [...audiences])
    .execute();
  return rows.map(toFederation);
}

/** Any tenant: whether some trust record already claims this (issuer, audience). */
export async function issuerAudienceTaken(
  h: StoreHandle,
  issuer: string,
  audience: string,
): Promise<boolean> {
  const row = await h.db
    .selectFrom('federations')
    .select('id')
    .where('issuer', '=', issuer)
    .where('audience', '=', audience)
    .executeTakeFirst();
  return row !== undefined;
}

/** The trust record and claim tags a request was created from. */
export interface FederatedRequest {
  requestId: string;
  tenantId: string;
  federationId: string;
  subject: string;
  principalTags: Record<string, string>;
  createdAt: number;
}

export async function insertFederatedRequest(tx: TxHandle, f: FederatedRequest): Promise<void> {
  await tx.db
    .insertInto('federated_requests')
    .values({
      request_id: f.requestId,
      tenant_id: f.tenantId,
      federation_id: f.federationId,
      subject: f.subject,
      principal_tags: toJson(f.principalTags),
      created_at: f.createdAt,
    })
    .execute();
}

function toFederatedRequest(row: FederatedRequestRow): FederatedRequest {
  return {
    requestId: row.request_id,
    tenantId: row.tenant_id,
    federationId: row.federation_id,
    subject: row.subject,
    principalTags: fromJson<Record<string, string>>(row.principal_tags),
    createdAt: row.created_at,
  };
}

export async function findFederatedRequest(
  h: StoreHandle,
  requestId: string,
): Promise<FederatedRequest | undefined> {
  const row = await h.db
    .selectFrom('federated_requests')
    .selectAll()
    .where('request_id', '=', requestId)
    .executeTakeFirst();
  return row && toFederatedRequest(row);
}

/** The federated requests among `requestIds` (continuous evaluation reads a batch at once). */
export async function findFederatedRequestsByIds(
  h: StoreHandle,
  requestIds: readonly string[],
): Promise<FederatedRequest[]> {
  if (requestIds.length === 0) return [];
  const rows = await h.db
    .selectFrom('federated_requests')
    .selectAll()
    .where('request_id', 'in', requestIds)
    .execute();
  return rows.map(toFederatedRequest);
}

/**
 * The id of the newest request for the same run that may still lead to a session: pending, or
 * approved and not yet activated. Deadlines and the activation window are the caller's to check.
 */
export async function findOpenFederatedRequest(
  h: StoreHandle,
  q: { federationId: string; principalId: string; privilegeId: string; ticket: string },
): Promise<string | undefined> {
  const row = await h.db
    .selectFrom('access_requests')
    .innerJoin('federated_requests', 'federated_requests.request_id', 'access_requests.id')
    .leftJoin('sessions', 'sessions.request_id', 'access_requests.id')
    .select('access_requests.id')
    .where('federated_requests.federation_id', '=', q.federationId)
    .where('access_requests.principal_id', '=', q.principalId)
    .where('access_requests.privilege_id', '=', q.privilegeId)
    .where('access_requests.ticket', '=', q.ticket)
    .where('access_requests.state', 'in', ['pending', 'approved'])
    .where('sessions.id', 'is', null)
    .orderBy('access_requests.created_at', 'desc')
    .orderBy('access_requests.id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.id;
}

/** Ids of the live sessions started through a trust record. */
export async function listLiveSessionsOfFederation(h: StoreHandle, federationId: string): Promise<string[]> {
  const rows = await h.db
    .selectFrom('sessions')
    .innerJoin('federated_requests', 'federated_requests.request_id', 'sessions.request_id')
    .select('sessions.id')
    .where('federated_requests.federation_id', '=', federationId)
    .where('sessions.state', '=', 'active')
    .execute();
  return rows.map((r) => r.id);
}
