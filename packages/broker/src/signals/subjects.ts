import { isIdOf } from '../domain/ids.js';
import type { Principal } from '../domain/principal.js';
import type { Session } from '../domain/session.js';
import type { SignalTransmitter } from '../domain/transmitter.js';
import type { StoreHandle } from '../store/database.js';
import { listPrincipals } from '../store/repositories/principals.js';
import { findSession } from '../store/repositories/sessions.js';
import type { SimpleSubject, Subject } from './caep-events.js';

/**
 * Principal attributes that tie a principal to its identity at the transmitter:
 * - `email` matches an `email` subject (and an `account` subject's `acct:` address),
 *   compared without regard to case;
 * - `idp_sub` matches an `iss_sub` subject's `sub` whose `iss` is the transmitter's issuer,
 *   or the principal's own `idp_issuer` attribute when it has one; and an `opaque` subject's id.
 * A subject the broker issued itself (`iss_sub` with the broker's URL as `iss`, or `opaque`)
 * may also name a Tether principal id or session id directly.
 */
export const SUBJECT_ATTRIBUTES = { email: 'email', sub: 'idp_sub', issuer: 'idp_issuer' } as const;

/** Whom a signal is about, in the transmitter's tenant: principals, and a session if one was named. */
export interface ResolvedSubject {
  principals: Principal[];
  /** The session the subject named; its principal is among `principals`. */
  session?: Session;
}

interface Lookup {
  h: StoreHandle;
  transmitter: SignalTransmitter;
  brokerUrl: string;
  all: Promise<Principal[]>;
}

/**
 * Maps a subject to what it names in the transmitter's tenant; nothing outside that tenant is
 * ever looked at. A complex subject's user and session must agree (the session must be the
 * user's); one that names a session only is about that session's principal.
 */
export async function resolveSubject(
  h: StoreHandle,
  transmitter: SignalTransmitter,
  brokerUrl: string,
  subject: Subject,
): Promise<ResolvedSubject> {
  const lookup: Lookup = { h, transmitter, brokerUrl, all: listPrincipals(h, transmitter.tenantId) };
  if (subject.format === 'complex') {
    const users = subject.user ? await principalsOf(lookup, subject.user) : undefined;
    const session = subject.session ? await sessionOf(lookup, subject.session) : undefined;
    if (subject.session && !session) return { principals: [] };
    if (!session) return { principals: users ?? [] };
    const owner = (await lookup.all).find((p) => p.id === session.principalId);
    if (!owner || (users && !users.some((u) => u.id === owner.id))) return { principals: [] };
    return { principals: [owner], session };
  }
  const identifiers = subject.format === 'aliases' ? subject.identifiers : [subject];
  const found = new Map<string, Principal>();
  for (const id of identifiers) {
    const session = await sessionOf(lookup, id);
    if (session) {
      const owner = (await lookup.all).find((p) => p.id === session.principalId);
      return owner ? { principals: [owner], session } : { principals: [] };
    }
    for (const p of await principalsOf(lookup, id)) found.set(p.id, p);
  }
  return { principals: [...found.values()] };
}

/** A Tether session named by an identifier the broker itself issues. */
async function sessionOf(l: Lookup, id: SimpleSubject): Promise<Session | undefined> {
  const ref =
    id.format === 'opaque' ? id.id : id.format === 'iss_sub' && isBroker(l, id.iss) ? id.sub : undefined;
  if (ref === undefined || !isIdOf('session', ref)) return undefined;
  return findSession(l.h, l.transmitter.tenantId, ref);
}

async function principalsOf(l: Lookup, id: SimpleSubject): Promise<Principal[]> {
  const all = await l.all;
  const attr = (p: Principal, name: string) => p.attributes[name];
  switch (id.format) {
    case 'email':
      return all.filter((p) => sameEmail(attr(p, SUBJECT_ATTRIBUTES.email), id.email));
    case 'account':
      return all.filter((p) => sameEmail(attr(p, SUBJECT_ATTRIBUTES.email), id.uri.slice('acct:'.length)));
    case 'iss_sub':
      if (isBroker(l, id.iss)) return all.filter((p) => p.id === id.sub);
      return all.filter(
        (p) =>
          attr(p, SUBJECT_ATTRIBUTES.sub) === id.sub &&
          (attr(p, SUBJECT_ATTRIBUTES.issuer) ?? l.transmitter.issuer) === id.iss,
      );
    case 'opaque':
      return all.filter((p) => p.id === id.id || attr(p, SUBJECT_ATTRIBUTES.sub) === id.id);
    case 'unsupported':
      return [];
  }
}

function isBroker(l: Lookup, iss: string): boolean {
  return iss.replace(/\/+$/, '') === l.brokerUrl;
}

function sameEmail(held: string | undefined, named: string): boolean {
  return held !== undefined && held.toLowerCase() === named.toLowerCase();
}
