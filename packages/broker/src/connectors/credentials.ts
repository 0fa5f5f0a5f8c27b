import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { openSecret } from '../config/key-encryption.js';
import { assertSessionVisible } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { isLive } from '../domain/session.js';
import { inTransaction } from '../store/database.js';
import {
  findConnector,
  listSessionJobs,
  markCollected,
  uncollectedSecrets,
} from '../store/repositories/connectors.js';
import { findSession } from '../store/repositories/sessions.js';
import { credentialSealBinding } from './drivers.js';

export interface CollectedCredential {
  connector: string;
  kind: string;
  username: string;
  secret: string;
  validUntil: number;
}

export interface Collected {
  credentials: CollectedCredential[];
  /** Names of the connectors whose credential is still being minted. */
  pending: string[];
}

/**
 * The session's holder collects its downstream credentials: each value is opened, answered and
 * forgotten in one transaction, so it is handed out once (a second call answers only what was
 * minted since). Nobody else may collect them, admins included: they never see a value; and the
 * holder proves possession of the session key (`possession`: a verified proof's thumbprint).
 */
export async function collectCredentials(
  ctx: BrokerContext,
  caller: Caller,
  sessionId: string,
  possession: { jkt: string },
): Promise<Collected> {
  const session = await findSession(ctx.store, caller.tenant.id, sessionId);
  assertSessionVisible(session, caller, sessionId);
  if (session.principalId !== caller.principal.id)
    throw new TetherError('forbidden', "only the session's holder may collect its credentials");
  // The principal's API token alone (stolen, say) is not enough: the session's key must sign.
  if (possession.jkt !== session.jkt)
    throw new TetherError(
      'invalid_dpop_proof',
      "credentials are collected with a DPoP proof signed by the session's key",
    );
  if (!isLive(session, ctx.clock.now()))
    throw new TetherError(
      'session_not_live',
      `session ${session.id} has ended; its credentials are destroyed`,
    );
  const credentials = await inTransaction(ctx.store, async (tx) => {
    const now = ctx.clock.now();
    const out: CollectedCredential[] = [];
    for (const { credential, sealedSecret } of await uncollectedSecrets(tx, session.id)) {
      const connector = await findConnector(tx, session.tenantId, credential.connectorId);
      const secret = await openSecret(
        ctx.kek,
        sealedSecret,
        credentialSealBinding(session.id, credential.connectorId),
      );
      await markCollected(tx, session.id, credential.connectorId, now);
      out.push({
        connector: connector?.name ?? credential.connectorId,
        kind: connector?.kind ?? 'unknown',
        username: credential.username,
        secret,
        validUntil: credential.validUntil,
      });
    }
    if (out.length > 0)
      await recordAudit(tx, session.tenantId, now, {
        actor: caller.principal.id,
        action: 'connector.credentials_collected',
        target: session.id,
        outcome: 'success',
        requestId: session.requestId,
        ticket: session.ticket,
        principalId: session.principalId,
        details: { connectors: out.map((c) => c.connector), usernames: out.map((c) => c.username) },
      });
    return out;
  });
  return { credentials, pending: await pendingMints(ctx, session.tenantId, session.id) };
}

/** Names of the connectors whose mint job for the session is not done. */
export async function pendingMints(
  ctx: Pick<BrokerContext, 'store'>,
  tenantId: string,
  sessionId: string,
): Promise<string[]> {
  const jobs = (await listSessionJobs(ctx.store, sessionId)).filter(
    (j) => j.action === 'mint' && j.state === 'pending',
  );
  const names: string[] = [];
  for (const job of jobs)
    names.push((await findConnector(ctx.store, tenantId, job.connectorId))?.name ?? job.connectorId);
  return names;
}

/**
 * Waits (up to `waitMs`) until the session's credentials are minted, so that the activation
 * answer can carry them. A mint that has failed once is not waited for (it is retried with
 * backoff), nor is a downstream system slower than `waitMs`: activation is not held back, and
 * the holder collects the rest later.
 */
export async function awaitMinted(
  ctx: Pick<BrokerContext, 'store'>,
  sessionId: string,
  waitMs: number,
): Promise<void> {
  const deadline = performance.now() + waitMs;
  const firstAttemptsPending = async () =>
    (await listSessionJobs(ctx.store, sessionId)).some(
      (j) => j.action === 'mint' && j.state === 'pending' && j.attempts === 0,
    );
  while ((await firstAttemptsPending()) && performance.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 50));
}
