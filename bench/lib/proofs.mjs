// DPoP proofs in bulk. The SDK signs through WebCrypto (asynchronous, ~4× slower here); a
// throughput run needs tens of thousands of proofs minted beforehand, so this signs the same
// JWS — same header, same claims in the same order, same size — with node:crypto.
import { createHash, createPrivateKey, randomUUID, sign } from 'node:crypto';
import { createDpopProof } from '../../packages/client/dist/index.js';

const b64 = (text) => Buffer.from(text).toString('base64url');

/**
 * Mints `count` proofs for one request (`method`, absolute `url`) bound to `accessToken`, each
 * with its own `jti` and `iat` = now, and the PEP's DPoP `nonce` when given. `session` is what
 * BenchTenant.session() answers. Checks that a minted proof has the size of one the SDK makes
 * for the same request.
 */
export async function mintProofs(session, { method, url, accessToken, count, nonce }) {
  const key = createPrivateKey({ key: session.privateJwk, format: 'jwk' });
  const target = new URL(url);
  const header = b64(JSON.stringify({ alg: 'EdDSA', typ: 'dpop+jwt', jwk: session.key.publicJwk }));
  const ath = createHash('sha256').update(accessToken, 'ascii').digest('base64url');
  const htu = `${target.origin}${target.pathname}`;
  const proofs = new Array(count);
  for (let i = 0; i < count; i++) {
    const payload = b64(
      JSON.stringify({
        htm: method,
        htu,
        ath,
        ...(nonce ? { nonce } : {}),
        jti: randomUUID(),
        iat: Math.floor(Date.now() / 1000),
      }),
    );
    const input = `${header}.${payload}`;
    proofs[i] = `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
  }
  const reference = await createDpopProof(session.key, { method, url, accessToken, nonce });
  if (count > 0 && reference.length !== proofs[0].length) {
    throw new Error(`minted proofs are ${proofs[0].length} bytes, the SDK's ${reference.length}`);
  }
  return proofs;
}
