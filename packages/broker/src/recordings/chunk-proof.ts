import { TetherError } from '@tether-broker/protocol';
import { calculateJwkThumbprint, compactVerify, EmbeddedJWK, type JWK } from 'jose';

/** The `typ` of a recording chunk's proof: it is no access token, DPoP proof or assertion. */
export const CHUNK_PROOF_TYP = 'tether-recording+jwt';
const ALGORITHMS = ['EdDSA', 'Ed25519', 'ES256', 'ES384'];

/** What a chunk's proof states, once its signature has verified. */
export interface ChunkClaims {
  sid: string;
  seq: number;
  sha256: string;
  final: boolean;
  iat: number;
  /** RFC 7638 thumbprint of the key that signed it. */
  jkt: string;
}

function refused(why: string): TetherError {
  return new TetherError('invalid_signature', `the recording chunk's proof is refused: ${why}`);
}

/**
 * Verifies a chunk's proof: a compact JWS whose header carries the signer's public JWK and whose
 * payload states the session, the chunk's position and its hash. Whether the key is the one the
 * session is bound to, and the rest, the caller decides against the store.
 */
export async function verifyChunkProof(proof: string): Promise<ChunkClaims> {
  let verified: Awaited<ReturnType<typeof compactVerify>>;
  try {
    verified = await compactVerify(proof, EmbeddedJWK, { algorithms: ALGORITHMS });
  } catch {
    throw refused('not a valid signature by the public key in its header');
  }
  if (verified.protectedHeader.typ !== CHUNK_PROOF_TYP) throw refused(`its typ is not ${CHUNK_PROOF_TYP}`);
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(verified.payload));
  } catch {
    throw refused('its payload is not JSON');
  }
  const p = payload as Record<string, unknown>;
  if (
    typeof payload !== 'object' ||
    payload === null ||
    typeof p.sid !== 'string' ||
    !Number.isSafeInteger(p.seq) ||
    (p.seq as number) < 0 ||
    typeof p.sha256 !== 'string' ||
    !/^[0-9a-f]{64}$/.test(p.sha256) ||
    !Number.isSafeInteger(p.iat) ||
    (p.final !== undefined && typeof p.final !== 'boolean')
  )
    throw refused('its payload must be {sid, seq, sha256 (hex), iat[, final]}');
  return {
    sid: p.sid,
    seq: p.seq as number,
    sha256: p.sha256,
    final: p.final === true,
    iat: p.iat as number,
    jkt: await calculateJwkThumbprint(verified.protectedHeader.jwk as JWK),
  };
}
