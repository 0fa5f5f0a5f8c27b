import { StatusList } from '@tether/protocol';
import { SignJWT } from 'jose';
import { SIGNING_ALG, type SigningKeys } from './keys.js';

export const STATUS_LIST_MEDIA_TYPE = 'application/statuslist+jwt';

/**
 * A signed Status List Token (draft-ietf-oauth-status-list §5.1): `sub` is the list's URI,
 * `ttl` tells a relying party how long it may cache it, `exp` bounds its use.
 */
export async function signStatusList(
  keys: SigningKeys,
  list: { uri: string; bits: 1 | 2 | 4 | 8; size: number; flagged: { idx: number; status: number }[] },
  s: { issuer: string; now: number; ttlSeconds: number },
): Promise<string> {
  const statuses = new StatusList(list.size, list.bits);
  for (const { idx, status } of list.flagged) statuses.set(idx, status);
  const signer = keys.signer();
  const iat = Math.floor(s.now / 1000);
  return new SignJWT({ status_list: statuses.encode(), ttl: s.ttlSeconds })
    .setProtectedHeader({ alg: SIGNING_ALG, typ: 'statuslist+jwt', kid: signer.kid })
    .setIssuer(s.issuer)
    .setSubject(list.uri)
    .setIssuedAt(iat)
    .setExpirationTime(iat + s.ttlSeconds * 10)
    .sign(signer.privateKey);
}
