import { randomUUID } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { accessTokenExpiry, type Session, tokenIssuedAt } from '../domain/session.js';
import { SIGNING_ALG, type SigningKeys } from './keys.js';

/** The `authorization_details` type Tether issues (RFC 9396). */
export const PRIVILEGE_DETAIL_TYPE = 'tether_privilege';

export function statusListUri(issuer: string, listId: number): string {
  return `${issuer}/v1/status-lists/${listId}`;
}

export interface IssuedAccessToken {
  token: string;
  jti: string;
  expiresAt: number;
}

/**
 * An RFC 9068 access token for one session: the entitlement is embedded, bound to the
 * holder's DPoP key (`cnf.jkt`), never valid past the session's hard expiry, and names the
 * status-list entry that revokes it.
 */
export async function issueAccessToken(
  keys: SigningKeys,
  session: Session,
  s: { issuer: string; now: number; tenantCutoff: number },
): Promise<IssuedAccessToken> {
  const signer = keys.signer();
  // After a narrowing, PEPs refuse the session's tokens issued before its cutoff: a token
  // issued now, with the narrower grant, must not fall under it. Nor under the tenant's
  // cut-off (epoch seconds, the second after it was made): a token issued since passes it.
  const iat = Math.max(tokenIssuedAt(session, s.now), s.tenantCutoff);
  // Floor, not round: the token must never outlive the session, even by a fraction of a second.
  const exp = Math.floor(accessTokenExpiry(session, s.now) / 1000);
  const jti = randomUUID();
  const audiences = session.grant.audiences;
  const token = await new SignJWT({
    client_id: session.principalId,
    tenant: session.tenantId,
    sid: session.id,
    cnf: { jkt: session.jkt },
    ...(session.ticket === null ? {} : { ticket: session.ticket }),
    // RFC 8693 §4.1: a sub-session's tokens say who acts for the subject.
    ...(session.delegation === null ? {} : { act: session.delegation.act }),
    session_exp: Math.floor(session.hardExpiresAt / 1000),
    status: { status_list: { idx: session.statusIdx, uri: statusListUri(s.issuer, session.statusListId) } },
    authorization_details: [
      {
        type: PRIVILEGE_DETAIL_TYPE,
        privilege: session.grant.privilege,
        actions: session.grant.actions,
        resources: session.grant.resources,
      },
    ],
  })
    .setProtectedHeader({ alg: SIGNING_ALG, typ: 'at+jwt', kid: signer.kid })
    .setIssuer(s.issuer)
    .setSubject(session.principalId)
    .setAudience(audiences.length === 1 ? (audiences[0] as string) : audiences)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(signer.privateKey);
  return { token, jti, expiresAt: exp * 1000 };
}

export interface OwnAccessTokenClaims {
  sub: string;
  client_id: string;
  tenant: string;
  sid: string;
  exp: number;
  iat: number;
  iss: string;
  aud: string | string[];
  jti: string;
  cnf: { jkt: string };
  authorization_details: unknown[];
  ticket?: string;
  session_exp: number;
}

/**
 * Verifies a session access token this broker issued (signature by one of its keys, `typ`,
 * issuer). Expiry is left to the caller: introspection answers "inactive" for an expired
 * token, revocation still accepts one. Returns undefined for anything else.
 */
export async function readOwnAccessToken(
  keys: SigningKeys,
  token: string,
  issuer: string,
): Promise<OwnAccessTokenClaims | undefined> {
  try {
    const { payload } = await jwtVerify(
      token,
      async (header) => {
        const key = header.kid ? keys.verificationKey(header.kid) : undefined;
        if (!key) throw new Error('unknown key');
        return key;
      },
      {
        algorithms: [SIGNING_ALG],
        typ: 'at+jwt',
        issuer,
        requiredClaims: ['sid', 'exp', 'sub'],
        currentDate: new Date(0),
      },
    );
    if (typeof payload.sid !== 'string' || typeof payload.tenant !== 'string') return undefined;
    return payload as unknown as OwnAccessTokenClaims;
  } catch {
    return undefined;
  }
}
