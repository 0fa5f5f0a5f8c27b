import { createHash } from 'node:crypto';
import { openSecret, type SealBinding } from '../config/key-encryption.js';
import type { BrokerContext } from '../core/context.js';
import type { Connector } from '../domain/connector.js';
import { outboundOf } from '../net/client.js';
import { destroyRole, mintRole } from './postgres-roles.js';
import { callWebhookTarget, type WebhookCreated, type WebhookDestroyed } from './webhook-target.js';

/**
 * A connector's sealed URL opens only in its own row, with its own settings: copied to another
 * connector, or with its grant roles or kind edited in SQL, it does not open, and nothing is
 * minted.
 */
export function connectorSealBinding(
  c: Pick<Connector, 'id' | 'kind' | 'tenantId' | 'settings'>,
): SealBinding {
  const settings = createHash('sha256')
    .update(JSON.stringify([c.settings.grantRoles, c.settings.target]))
    .digest('base64url');
  return { connector: c.id, kind: c.kind, tenant: c.tenantId, settings };
}

/** The audience of a webhook connector's calls: the connector itself, tenant-specific. */
export function connectorAudience(issuer: string, connectorId: string): string {
  return `${issuer}/v1/connectors/${connectorId}`;
}

/** A session's credential value opens only for that session and connector. */
export function credentialSealBinding(sessionId: string, connectorId: string): SealBinding {
  return { session: sessionId, connector: connectorId };
}

export interface MintedCredential {
  username: string;
  /** The value handed to the holder once; sealed at rest, never logged. */
  secret: string;
  fingerprint: string;
  validUntil: number;
}

export interface DestroyedCredential {
  existed: boolean;
  connectionsTerminated: number;
}

/** What a driver knows of the session it mints for. */
export interface CredentialSubject {
  id: string;
  tenantId: string;
  principalId: string;
  ticket: string | null;
  hardExpiresAt: number;
}

type DriverContext = Pick<BrokerContext, 'kek' | 'config' | 'keys' | 'clock'>;

/**
 * The key a credential is known by downstream: the session and the connector, so that two
 * connectors on one system never share (and reset) one credential, and every retry of one job
 * names the same one.
 */
export function credentialKey(sessionId: string, connector: Pick<Connector, 'id'>): string {
  const at = connector.id.indexOf('_') + 1;
  return `${sessionId}_${connector.id.slice(at, at + 8)}`;
}

/**
 * The connection URL, opened and pointed at the address the outbound rules checked: the name is
 * resolved once here, so a DNS answer that changes later cannot turn the connection inwards.
 */
async function postgresTarget(ctx: DriverContext, connector: Connector, sealedSecret: string) {
  const url = new URL(await openSecret(ctx.kek, sealedSecret, connectorSealBinding(connector)));
  // Checked again at each use: a URL sealed before this rule existed must not slip past it.
  const refusal = postgresUrlRefusal(url);
  if (refusal !== undefined) throw new Error(`the connector's URL ${refusal}`);
  const { address, family } = await outboundOf(ctx).checkedAddress(url.hostname);
  url.hostname = family === 6 ? `[${address}]` : address;
  return { url: url.toString(), grantRoles: connector.settings.grantRoles };
}

async function webhookCall(
  ctx: DriverContext,
  connector: Connector,
  sealedSecret: string,
  session: CredentialSubject,
  action: 'create' | 'destroy',
): Promise<WebhookCreated | WebhookDestroyed> {
  // The URL is sealed like any connector secret: a row edited in SQL cannot redirect the calls.
  const url = await openSecret(ctx.kek, sealedSecret, connectorSealBinding(connector));
  return callWebhookTarget(outboundOf(ctx), ctx.keys.signer(), {
    action,
    issuer: ctx.config.publicUrl,
    url,
    audience: connectorAudience(ctx.config.publicUrl, connector.id),
    credentialId: credentialKey(session.id, connector),
    tenant: session.tenantId,
    session: session.id,
    principal: session.principalId,
    ticket: session.ticket,
    validUntil: session.hardExpiresAt,
    now: ctx.clock.now(),
  });
}

async function fingerprintOf(secret: string): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(secret));
  return Buffer.from(digest).toString('hex');
}

/** Mints the session's credential in the connector's system; repeating it is safe. */
export async function mintCredential(
  ctx: DriverContext,
  connector: Connector,
  sealedSecret: string,
  session: CredentialSubject,
): Promise<MintedCredential> {
  if (connector.kind === 'webhook') {
    const created = (await webhookCall(ctx, connector, sealedSecret, session, 'create')) as WebhookCreated;
    return {
      username: created.username,
      secret: created.secret,
      fingerprint: await fingerprintOf(created.secret),
      validUntil: session.hardExpiresAt,
    };
  }
  const target = await postgresTarget(ctx, connector, sealedSecret);
  const minted = await mintRole(target, credentialKey(session.id, connector), session.hardExpiresAt);
  return {
    username: minted.username,
    secret: minted.password,
    fingerprint: minted.fingerprint,
    validUntil: minted.validUntil,
  };
}

/** Destroys the session's credential and cuts its live connections; repeating it is safe. */
export async function destroyCredential(
  ctx: DriverContext,
  connector: Connector,
  sealedSecret: string,
  session: CredentialSubject,
): Promise<DestroyedCredential> {
  if (connector.kind === 'webhook') {
    const destroyed = (await webhookCall(
      ctx,
      connector,
      sealedSecret,
      session,
      'destroy',
    )) as WebhookDestroyed;
    return { existed: true, connectionsTerminated: destroyed.connectionsTerminated };
  }
  const target = await postgresTarget(ctx, connector, sealedSecret);
  const destroyed = await destroyRole(target, credentialKey(session.id, connector));
  return { existed: destroyed.existed, connectionsTerminated: destroyed.connectionsTerminated };
}

/** Query parameters a connector URL may carry: TLS mode alone. */
const POSTGRES_URL_PARAMETERS = new Set(['sslmode']);
const SSL_MODES = new Set(['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify']);

/**
 * Why the broker would not connect with a PostgreSQL URL, or undefined. The driver (pg) lets a
 * query parameter override the URL's host and port (`?host=127.0.0.1`, `?host=/var/run/postgresql`)
 * and read files named in it (`sslrootcert`, `sslkey`): each of those would walk around the host
 * check. A host must be a plain name or an IP literal; an encoded path (a Unix socket) is not one.
 */
export function postgresUrlRefusal(url: URL): string | undefined {
  for (const [name, value] of url.searchParams) {
    if (!POSTGRES_URL_PARAMETERS.has(name)) return `may not carry the parameter ${JSON.stringify(name)}`;
    if (name === 'sslmode' && !SSL_MODES.has(value)) return `has an unknown sslmode ${JSON.stringify(value)}`;
  }
  if (url.hash) return 'may not carry a fragment';
  const host = url.hostname;
  if (!/^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)$/i.test(host))
    return 'must name its host by a plain name or an IP address (no socket path)';
  return undefined;
}
