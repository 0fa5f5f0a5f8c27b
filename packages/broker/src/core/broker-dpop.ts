import { DpopError, ReplayCache, type VerifiedDpopProof, verifyDpopProof } from '@tether-broker/pep';
import { rememberOnce } from '../store/single-use.js';
import type { BrokerContext } from './context.js';

export interface BrokerProofCheck {
  method: string;
  /** Path on the broker, e.g. `/oauth/token`; `htu` is checked against the public URL + path. */
  path: string;
  accessToken?: string;
  expectedJkt?: string;
}

/**
 * Verifies a DPoP proof sent to the broker (RFC 9449 §4.3). `htu` is compared with the
 * configured public URL, never the Host header. Proof ids are remembered in the store for every
 * replica, so a proof is accepted once across the deployment.
 */
export async function verifyBrokerProof(
  ctx: BrokerContext,
  header: string | string[] | undefined,
  check: BrokerProofCheck,
): Promise<VerifiedDpopProof> {
  const nonces = ctx.nonces;
  const proof = await verifyDpopProof(
    header,
    {
      method: check.method,
      url: `${ctx.config.publicUrl}${check.path}`,
      ...(check.accessToken ? { accessToken: check.accessToken } : {}),
      ...(check.expectedJkt ? { expectedJkt: check.expectedJkt } : {}),
      // Checked against the proof's verified `nonce` claim, as the PEPs do.
      ...(nonces ? { nonce: (proofNonce: unknown) => nonces.expectedFor(proofNonce) } : {}),
    },
    {
      now: () => ctx.clock.now(),
      iatWindowSeconds: ctx.config.dpopIatWindowSeconds,
      // A proof dated ahead is excused only by clock skew, never by the whole iat window.
      clockToleranceSeconds: ctx.config.clockToleranceSeconds,
      // The store's unique key on (jkt, jti) is what makes a proof single-use across replicas.
      // A shared in-memory cache would add nothing but a way to fill it and refuse everyone.
      replayCache: new ReplayCache({ maxEntries: 1, now: () => ctx.clock.now() }),
    },
  );
  const first = await rememberOnce(ctx.store, 'dpop_jtis', {
    jkt: proof.jkt,
    jti: proof.jti,
    expires_at: (proof.iat + ctx.config.dpopIatWindowSeconds * 2) * 1000,
  });
  if (!first) throw new DpopError('invalid_dpop_proof', 'DPoP proof has already been used (jti replay)');
  return proof;
}

export async function pruneSpentProofs(ctx: BrokerContext, now: number): Promise<void> {
  await ctx.store.db.deleteFrom('dpop_jtis').where('expires_at', '<', now).execute();
}
