import { DpopError, ReplayCache, type VerifiedDpopProof, verifyDpopProof } from '@tether-broker/pep';
import type { BrokerContext } from '../core/context.js';
import type { TxHandle } from '../store/database.js';
import { rememberOnce } from '../store/single-use.js';
import { OAuthError } from './oauth-error.js';

/**
 * A DPoP proof sent to the token endpoint, verified (RFC 9449 §4.3) but not yet spent: its
 * `jti` is remembered by {@link spendTokenProof} inside the grant's own transaction, so a grant
 * costs one durable commit, not one for the proof and one for the grant. The checks are those
 * of `verifyBrokerProof` (core/broker-dpop.ts), which remembers the jti in a commit of its own.
 */
export interface TokenProof {
  proof: VerifiedDpopProof;
  /** Epoch ms until which the jti must be remembered: the proof stays acceptable that long. */
  rememberUntil: number;
}

/** Verifies the proof of a `POST /oauth/token` (htu = the configured public URL, never the Host). */
export async function verifyTokenProof(
  ctx: BrokerContext,
  header: string | string[] | undefined,
): Promise<TokenProof> {
  const nonces = ctx.nonces;
  try {
    const proof = await verifyDpopProof(
      header,
      {
        method: 'POST',
        url: `${ctx.config.publicUrl}/oauth/token`,
        // Checked against the proof's verified `nonce` claim, as the PEPs do.
        ...(nonces ? { nonce: (proofNonce: unknown) => nonces.expectedFor(proofNonce) } : {}),
      },
      {
        now: () => ctx.clock.now(),
        iatWindowSeconds: ctx.config.dpopIatWindowSeconds,
        // A proof dated ahead is excused only by clock skew, never by the whole iat window.
        clockToleranceSeconds: ctx.config.clockToleranceSeconds,
        // Single use is the store's unique key on (jkt, jti), across replicas: see spendTokenProof.
        replayCache: new ReplayCache({ maxEntries: 1, now: () => ctx.clock.now() }),
      },
    );
    return { proof, rememberUntil: (proof.iat + ctx.config.dpopIatWindowSeconds * 2) * 1000 };
  } catch (err) {
    if (err instanceof DpopError) throw new OAuthError(err.code, err.message);
    throw err;
  }
}

/**
 * Spends the proof inside the grant's transaction: the refusal of a replay when its (jkt, jti)
 * was seen before, on any replica, else nothing. The grant goes on only when this answers
 * nothing; the jti stays spent whatever the grant concludes, once the transaction commits.
 */
export async function spendTokenProof(tx: TxHandle, proof: TokenProof): Promise<OAuthError | undefined> {
  const first = await rememberOnce(tx, 'dpop_jtis', {
    jkt: proof.proof.jkt,
    jti: proof.proof.jti,
    expires_at: proof.rememberUntil,
  });
  return first
    ? undefined
    : new OAuthError('invalid_dpop_proof', 'DPoP proof has already been used (jti replay)');
}

/**
 * When the request failed before its grant's transaction committed (a refused client, a
 * store error), the proof is still spent, in a commit of its own, as if it had been spent
 * before the grant began: a verified proof is never accepted twice, whatever became of its
 * first request. Best effort: a store
 * that failed the grant may fail this too, and the grant's error is what the client gets.
 */
export async function spendFailedTokenProof(ctx: BrokerContext, proof: TokenProof): Promise<void> {
  try {
    await rememberOnce(ctx.store, 'dpop_jtis', {
      jkt: proof.proof.jkt,
      jti: proof.proof.jti,
      expires_at: proof.rememberUntil,
    });
  } catch {
    // The grant's own error is reported by the caller.
  }
}
