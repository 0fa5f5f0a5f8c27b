import { SignJWT } from 'jose';
import type { Session } from '../domain/session.js';
import type { Stream } from '../domain/ssf-stream.js';
import {
  SESSION_REVOKED,
  SET_JWT_TYPE,
  TOKEN_CLAIMS_CHANGE,
  VERIFICATION,
} from '../domain/ssf-vocabulary.js';
import type { StoreHandle } from '../store/database.js';
import { findSessionById } from '../store/repositories/sessions.js';
import type { OutboxEntry } from '../store/repositories/ssf-outbox.js';
import { PRIVILEGE_DETAIL_TYPE } from '../tokens/access-token.js';
import { type ActiveSigningKey, SIGNING_ALG } from '../tokens/keys.js';

/** Epoch milliseconds → NumericDate. */
const seconds = (ms: number) => Math.floor(ms / 1000);

/** What a session event's outbox entry records (from the revocation log entry). */
export interface SessionEventFacts {
  sid: string;
  /** session-revoked: the end reason. */
  reason?: string;
  /** When the change happened (epoch milliseconds). */
  at: number;
  /** The revocation log position that reported it: the SET's `txn`. */
  txn: string;
}

/** CAEP `initiating_entity` for each end reason: who or what cut the session. */
const INITIATED_BY: Record<string, 'admin' | 'user' | 'policy' | 'system'> = {
  completed: 'user',
  revoked: 'admin',
  principal_disabled: 'admin',
  privilege_deleted: 'admin',
  privilege_changed: 'admin',
  policy_changed: 'policy',
  trust_changed: 'policy',
};

/**
 * The session as an RFC 9493 complex subject: the user as the `iss`/`sub` pair the session's
 * access tokens carry, the session id (the tokens' `sid`), and the tenant.
 */
function sessionSubject(issuer: string, tenantId: string, sid: string, principalId: string | undefined) {
  return {
    format: 'complex',
    ...(principalId === undefined ? {} : { user: { format: 'iss_sub', iss: issuer, sub: principalId } }),
    session: { format: 'opaque', id: sid },
    tenant: { format: 'opaque', id: tenantId },
  };
}

function sessionEvent(entry: OutboxEntry, facts: SessionEventFacts, session: Session | undefined) {
  const event_timestamp = seconds(facts.at);
  if (entry.kind === SESSION_REVOKED) {
    const reason = facts.reason ?? 'revoked';
    return {
      [SESSION_REVOKED]: {
        event_timestamp,
        initiating_entity: INITIATED_BY[reason] ?? 'system',
        reason_admin: { en: `Tether session ended: ${reason}` },
      },
    };
  }
  // The narrower entitlement, in the shape the session's access tokens carry it.
  const details = session
    ? [
        {
          type: PRIVILEGE_DETAIL_TYPE,
          privilege: session.grant.privilege,
          actions: session.grant.actions,
          resources: session.grant.resources,
        },
      ]
    : [];
  return { [TOKEN_CLAIMS_CHANGE]: { event_timestamp, claims: { authorization_details: details } } };
}

/**
 * The claims of an entry's SET (RFC 8417, profiled by SSF 1.0 §4): no `sub` and no `exp`, the
 * subject in `sub_id`, one event. Session facts are read now, the first time the SET is sent,
 * after the change that queued it has committed: a narrowing reports the session's
 * entitlement as the change left it. The caller stores the claims, so every retry of the same
 * `jti` carries the same ones.
 */
export async function buildSetClaims(
  h: StoreHandle,
  issuer: string,
  stream: Pick<Stream, 'id' | 'aud'>,
  entry: OutboxEntry,
): Promise<Record<string, unknown>> {
  const base = {
    iss: issuer,
    jti: entry.jti,
    iat: seconds(entry.createdAt),
    aud: stream.aud.length === 1 ? stream.aud[0] : stream.aud,
  };
  if (entry.kind === VERIFICATION) {
    const state = entry.facts.state;
    return {
      ...base,
      sub_id: { format: 'opaque', id: stream.id },
      events: { [VERIFICATION]: typeof state === 'string' ? { state } : {} },
    };
  }
  const facts = entry.facts as unknown as SessionEventFacts;
  const found = await findSessionById(h, facts.sid);
  const session = found?.tenantId === entry.tenantId ? found : undefined;
  return {
    ...base,
    txn: facts.txn,
    sub_id: sessionSubject(issuer, entry.tenantId, facts.sid, session?.principalId),
    events: sessionEvent(entry, facts, session),
  };
}

/**
 * Signs SET claims with the broker's signing key, `typ` `secevent+jwt`. Signed at each send,
 * not once: a receiver that was down past a key rotation still gets a SET it can verify with
 * the JWKS of the moment.
 */
export async function signSet(key: ActiveSigningKey, claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: SIGNING_ALG, typ: SET_JWT_TYPE, kid: key.kid })
    .sign(key.privateKey);
}
