import { refused } from './token-refusal.js';

/** One RFC 9396 `authorization_details` entry as Tether issues it. */
export interface TetherPrivilegeDetail {
  type: 'tether_privilege';
  privilege: string;
  actions: string[];
  resources: string[];
}

/** The claims of a Tether access token (RFC 9068 profile), as verified. The object is frozen. */
export interface TetherAccessClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  /** Present only when the token carries it. */
  nbf?: number;
  jti: string;
  client_id: string;
  tenant: string;
  sid: string;
  cnf: { jkt: string };
  ticket?: string;
  session_exp: number;
  status: { status_list: { idx: number; uri: string } };
  authorization_details: TetherPrivilegeDetail[];
  /**
   * RFC 8693 §4.1, on a delegated sub-session's tokens: who acts for `sub` (outermost the
   * current actor, nested inside the ones it acts for). Absent on a session of its own.
   */
  act?: ActorClaim;
}

/** One link of an `act` chain. */
export interface ActorClaim {
  sub: string;
  act?: ActorClaim;
}

// RFC 7638 SHA-256 thumbprint, base64url without padding.
const JKT = /^[A-Za-z0-9_-]{43}$/;

export function checkIssuer(iss: unknown, issuer: string): void {
  if (iss !== issuer) throw refused('claim iss is not the expected issuer');
}

export function checkAudience(aud: unknown, audience: string): void {
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (!audiences.includes(audience)) throw refused('claim aud does not include this resource server');
}

/** `exp`, `nbf` and `iat`, each with the leeway. */
export function checkLifetime(
  claims: { exp?: unknown; nbf?: unknown; iat?: unknown },
  nowS: number,
  leeway: number,
): void {
  const { exp, nbf, iat } = claims;
  if (!isNumericDate(exp)) throw refused('claim exp is missing or not a number');
  // RFC 7519 §4.1.4: the token is refused on or after exp.
  if (nowS >= exp + leeway) throw refused('the token has expired (exp)');
  if (nbf !== undefined) {
    if (!isNumericDate(nbf)) throw refused('claim nbf is not a number');
    if (nowS + leeway < nbf) throw refused('the token is not valid yet (nbf)');
  }
  if (!isNumericDate(iat)) throw refused('claim iat is missing or not a number');
  if (iat > nowS + leeway) throw refused('claim iat is in the future');
}

/** The session the token belongs to must still be running, and the token must not outlive it. */
export function checkSession(claims: TetherAccessClaims, nowS: number, leeway: number): void {
  if (nowS >= claims.session_exp + leeway) throw refused('the session has ended (session_exp has passed)');
  if (claims.exp > claims.session_exp) throw refused('claim exp is later than session_exp');
}

/** The Tether claims, present and well-typed, copied into a frozen object. */
export function readClaims(payload: Record<string, unknown>): TetherAccessClaims {
  const claims: TetherAccessClaims = {
    iss: payload.iss as string,
    sub: requiredString(payload, 'sub'),
    aud: copyAudience(payload.aud),
    exp: payload.exp as number,
    iat: payload.iat as number,
    jti: requiredString(payload, 'jti'),
    client_id: requiredString(payload, 'client_id'),
    tenant: requiredString(payload, 'tenant'),
    sid: requiredString(payload, 'sid'),
    cnf: { jkt: readJkt(payload.cnf) },
    session_exp: readSessionExp(payload.session_exp),
    status: readStatus(payload.status),
    authorization_details: readAuthorizationDetails(payload.authorization_details),
  };
  if (payload.nbf !== undefined) claims.nbf = payload.nbf as number;
  if (payload.ticket !== undefined) {
    if (typeof payload.ticket !== 'string') throw refused('claim ticket is not a string');
    claims.ticket = payload.ticket;
  }
  if (payload.act !== undefined) claims.act = readAct(payload.act, 0);
  return deepFreeze(claims);
}

/** An `act` chain: each link an object with a string `sub`; no deeper than any broker delegates. */
function readAct(value: unknown, depth: number): ActorClaim {
  if (depth >= MAX_ACT_DEPTH) throw refused('claim act is nested too deep');
  if (!isObject(value) || typeof value['sub'] !== 'string' || value['sub'] === '')
    throw refused('claim act is not an actor with a sub');
  return value['act'] === undefined
    ? { sub: value['sub'] }
    : { sub: value['sub'], act: readAct(value['act'], depth + 1) };
}

const MAX_ACT_DEPTH = 16;

function requiredString(payload: Record<string, unknown>, name: string): string {
  const value = payload[name];
  if (typeof value !== 'string' || value === '') throw refused(`claim ${name} is missing or not a string`);
  return value;
}

function copyAudience(aud: unknown): string | string[] {
  // checkAudience already found the audience in it; keep only strings.
  return typeof aud === 'string' ? aud : (aud as unknown[]).filter((a): a is string => typeof a === 'string');
}

function readJkt(cnf: unknown): string {
  if (!isObject(cnf) || typeof cnf['jkt'] !== 'string' || !JKT.test(cnf['jkt'])) {
    throw refused('claim cnf.jkt is missing or not a SHA-256 JWK thumbprint: the token is not DPoP-bound');
  }
  return cnf['jkt'];
}

function readSessionExp(value: unknown): number {
  if (!isNumericDate(value)) throw refused('claim session_exp is missing or not a number');
  return value;
}

function readStatus(status: unknown): TetherAccessClaims['status'] {
  const list = isObject(status) ? status['status_list'] : undefined;
  if (!isObject(list)) throw refused('claim status.status_list is missing');
  const { idx, uri } = list;
  if (!Number.isSafeInteger(idx) || (idx as number) < 0) {
    throw refused('claim status.status_list.idx is not a non-negative integer');
  }
  if (typeof uri !== 'string' || uri === '') throw refused('claim status.status_list.uri is not a string');
  return { status_list: { idx: idx as number, uri } };
}

function readAuthorizationDetails(value: unknown): TetherPrivilegeDetail[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw refused('claim authorization_details is missing or empty');
  }
  return value.map((entry: unknown) => {
    if (!isObject(entry) || entry['type'] !== 'tether_privilege') {
      throw refused('every authorization_details entry must be of type tether_privilege');
    }
    const { privilege, actions, resources } = entry;
    if (typeof privilege !== 'string' || privilege === '') {
      throw refused('an authorization_details entry has no privilege string');
    }
    if (!isStringArray(actions))
      throw refused('an authorization_details entry has actions that are not strings');
    if (!isStringArray(resources)) {
      throw refused('an authorization_details entry has resources that are not strings');
    }
    return { type: 'tether_privilege', privilege, actions: [...actions], resources: [...resources] };
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

// The claims are shared by every request that presents the same token: nobody may edit them.
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const member of Object.values(value)) deepFreeze(member);
    Object.freeze(value);
  }
  return value;
}
