import { StatusList } from '@tether-broker/protocol';
import { SignJWT } from 'jose';
import { SIGNING_ALG, type SigningKeys } from './keys.js';

export const STATUS_LIST_MEDIA_TYPE = 'application/statuslist+jwt';

/** A list's non-VALID entries as the `status_list` claim (`bits`, `lst`): every list Tether signs. */
export function encodeStatusList(list: {
  bits: 1 | 2 | 4 | 8;
  size: number;
  flagged: readonly { idx: number; status: number }[];
}): { bits: 1 | 2 | 4 | 8; lst: string } {
  const statuses = new StatusList(list.size, list.bits);
  for (const { idx, status } of list.flagged) statuses.set(idx, status);
  return statuses.encode();
}

/**
 * A signed Status List Token (draft-ietf-oauth-status-list §5.1): `sub` is the list's URI,
 * `ttl` tells a relying party how long it may cache it, `exp` bounds its use.
 */
export async function signStatusList(
  keys: SigningKeys,
  list: { uri: string; bits: 1 | 2 | 4 | 8; size: number; flagged: { idx: number; status: number }[] },
  s: { issuer: string; now: number; ttlSeconds: number },
): Promise<string> {
  const signer = keys.signer();
  const iat = Math.floor(s.now / 1000);
  return new SignJWT({ status_list: encodeStatusList(list), ttl: s.ttlSeconds })
    .setProtectedHeader({ alg: SIGNING_ALG, typ: 'statuslist+jwt', kid: signer.kid })
    .setIssuer(s.issuer)
    .setSubject(list.uri)
    .setIssuedAt(iat)
    .setExpirationTime(iat + s.ttlSeconds * 10)
    .sign(signer.privateKey);
}
