import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { sealSecret } from '../config/key-encryption.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import type { Connector, ConnectorKind } from '../domain/connector.js';
import { isIdOf, newId } from '../domain/ids.js';
import { outboundOf } from '../net/client.js';
import { inTransaction, isUniqueViolation, type StoreHandle } from '../store/database.js';
import {
  connectorHasHistory,
  deleteConnector,
  findConnector,
  findConnectorByName,
  insertConnector,
  listConnectors,
} from '../store/repositories/connectors.js';
import { listPrivileges } from '../store/repositories/privileges.js';
import { connectorSealBinding, postgresUrlRefusal } from './drivers.js';
import { assertPostgresTarget, PostgresTargetInvalid } from './postgres-roles.js';

export interface ConnectorInput {
  name: string;
  kind: ConnectorKind;
  /** PostgreSQL: the admin connection URL (a role with CREATEROLE). Sealed; never answered. */
  url: string;
  /** PostgreSQL: roles each session's login role is made a member of. */
  grantRoles: string[];
}

/**
 * Where a connector points, for display: scheme, host, port and path, never a user, password
 * or query.
 */
function displayTarget(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * Checks what can be checked before anything is stored: the URL's shape and grant names, and
 * that the host is one the broker may connect to (the outbound rules: a tenant admin must not
 * point a connector at the broker's own database or another internal service).
 */
/**
 * Built-in roles a session must never be given: they reach the database server's files and
 * programs (a shell on it) or other users' connections, far beyond any database privilege.
 */
const FORBIDDEN_GRANTS = new Set([
  'pg_execute_server_program',
  'pg_read_server_files',
  'pg_write_server_files',
  'pg_signal_backend',
]);

/** A webhook target: a URL the outbound client would call (https, a public or allowed host). */
function assertWebhookTarget(ctx: BrokerContext, input: ConnectorInput): URL {
  const refusal = outboundOf(ctx).refusalOf(input.url);
  if (refusal !== undefined) throw new TetherError('destination_refused', `url ${refusal}`);
  return new URL(input.url);
}

function assertTarget(ctx: BrokerContext, input: ConnectorInput): URL {
  if (input.kind === 'webhook') return assertWebhookTarget(ctx, input);
  const forbidden = input.grantRoles.filter((r) => FORBIDDEN_GRANTS.has(r));
  if (forbidden.length > 0)
    throw new TetherError(
      'invalid_request',
      `grant_roles may not name ${forbidden.join(', ')}: they reach the server's files, programs or other connections`,
    );
  try {
    assertPostgresTarget({ url: input.url, grantRoles: input.grantRoles });
  } catch (err: unknown) {
    if (err instanceof PostgresTargetInvalid) throw new TetherError('invalid_request', err.message);
    throw err;
  }
  const url = new URL(input.url);
  const shape = postgresUrlRefusal(url);
  if (shape !== undefined) throw new TetherError('destination_refused', `url ${shape}`);
  const refusal = outboundOf(ctx).hostRefusal(url.hostname);
  if (refusal !== undefined) throw new TetherError('destination_refused', `url ${refusal}`);
  return url;
}

/** An admin registers a downstream system; its connection URL is sealed under the KEK, bound to the row. */
export async function createConnector(
  ctx: BrokerContext,
  caller: Caller,
  input: ConnectorInput,
): Promise<Connector> {
  requireRole(caller, 'admin');
  const url = assertTarget(ctx, input);
  const now = ctx.clock.now();
  const connector: Connector = {
    id: newId('connector'),
    tenantId: caller.tenant.id,
    name: input.name,
    kind: input.kind,
    settings: { grantRoles: [...new Set(input.grantRoles)], target: displayTarget(url) },
    createdAt: now,
    updatedAt: now,
  };
  const sealed = await sealSecret(ctx.kek, input.url, connectorSealBinding(connector));
  await inTransaction(ctx.store, async (tx) => {
    try {
      await insertConnector(tx, connector, sealed);
    } catch (err) {
      if (isUniqueViolation(err))
        throw new TetherError('already_exists', `a connector named ${input.name} already exists`);
      throw err;
    }
    await recordAudit(tx, connector.tenantId, now, {
      actor: caller.principal.id,
      action: 'connector.created',
      target: connector.id,
      outcome: 'success',
      details: { name: connector.name, kind: connector.kind, ...connector.settings },
    });
  });
  return connector;
}

async function resolveConnector(h: StoreHandle, tenantId: string, ref: string): Promise<Connector> {
  const found = isIdOf('connector', ref)
    ? await findConnector(h, tenantId, ref)
    : await findConnectorByName(h, tenantId, ref);
  if (!found) throw new TetherError('not_found', `no connector ${JSON.stringify(ref)} in this tenant`);
  return found;
}

export async function findConnectors(ctx: BrokerContext, caller: Caller): Promise<Connector[]> {
  requireRole(caller, 'admin', 'auditor');
  return listConnectors(ctx.store, caller.tenant.id);
}

export async function getConnector(ctx: BrokerContext, caller: Caller, ref: string): Promise<Connector> {
  requireRole(caller, 'admin', 'auditor');
  return resolveConnector(ctx.store, caller.tenant.id, ref);
}

/**
 * An admin removes a connector no privilege names and no session ever used: the credentials
 * it minted are evidence of their sessions, and a destroy job may still need it.
 */
export async function removeConnector(ctx: BrokerContext, caller: Caller, ref: string): Promise<void> {
  requireRole(caller, 'admin');
  await inTransaction(ctx.store, async (tx) => {
    const connector = await resolveConnector(tx, caller.tenant.id, ref);
    const naming = (await listPrivileges(tx, caller.tenant.id)).filter((p) =>
      p.connectors.includes(connector.name),
    );
    if (naming.length > 0)
      throw new TetherError(
        'record_in_use',
        `privilege(s) ${naming.map((p) => p.name).join(', ')} name connector ${connector.name}`,
      );
    if (await connectorHasHistory(tx, connector.id))
      throw new TetherError(
        'record_in_use',
        `connector ${connector.name} minted credentials for sessions; it is kept as their evidence`,
      );
    await deleteConnector(tx, caller.tenant.id, connector.id);
    await recordAudit(tx, connector.tenantId, ctx.clock.now(), {
      actor: caller.principal.id,
      action: 'connector.deleted',
      target: connector.id,
      outcome: 'success',
      details: { name: connector.name, kind: connector.kind },
    });
  });
}
