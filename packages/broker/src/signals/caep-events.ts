/**
 * The CAEP 1.0 events the broker acts on, and the subject identifiers (RFC 9493, with the SSF
 * `complex` format) that say whom they are about. Pure: reads a verified SET's claims and
 * answers what it says, or why it does not conform.
 */

export const CAEP_EVENT_TYPE_PREFIX = 'https://schemas.openid.net/secevent/caep/event-type/';

export const CAEP_EVENTS = [
  'session-revoked',
  'credential-change',
  'device-compliance-change',
  'assurance-level-change',
  'token-claims-change',
  'risk-level-change',
] as const;
export type CaepEventName = (typeof CAEP_EVENTS)[number];

/** What one CAEP event reports, reduced to what continuous evaluation uses. */
export type CaepEvent =
  | { name: 'session-revoked' }
  | { name: 'credential-change'; credentialType: string; changeType: string }
  | { name: 'device-compliance-change'; currentStatus: 'compliant' | 'not-compliant' }
  | { name: 'assurance-level-change'; namespace: string; currentLevel: string }
  | { name: 'token-claims-change'; claims: Record<string, string> }
  | { name: 'risk-level-change'; currentLevel: 'low' | 'medium' | 'high' };

/** A simple subject identifier (RFC 9493 §3), or a format the broker does not map. */
export type SimpleSubject =
  | { format: 'email'; email: string }
  | { format: 'iss_sub'; iss: string; sub: string }
  | { format: 'opaque'; id: string }
  | { format: 'account'; uri: string }
  | { format: 'unsupported'; name: string };

/** The subject of an event: one identifier, several naming the same subject, or SSF's complex subject. */
export type Subject =
  | SimpleSubject
  | { format: 'aliases'; identifiers: SimpleSubject[] }
  | { format: 'complex'; user?: SimpleSubject; session?: SimpleSubject };

export interface ReadEvent {
  type: string;
  event: CaepEvent;
  subject: Subject;
  /** `event_timestamp` (epoch seconds), when the event carries one. */
  eventTimestamp: number | undefined;
}

/** The event payload does not conform to its definition (or names an unknown type). */
export class NonConformingEvent extends Error {
  constructor(
    message: string,
    readonly unknownType = false,
  ) {
    super(message);
    this.name = 'NonConformingEvent';
  }
}

const MAX_TEXT = 512;
const MAX_CLAIMS = 64;
const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_TEXT;

function text(payload: Record<string, unknown>, member: string): string {
  const value = payload[member];
  if (!isText(value)) throw new NonConformingEvent(`${member} must be a non-empty string`);
  return value;
}

/**
 * Reads the single event of a verified SET: `events` must hold exactly one member, a known
 * CAEP event type whose payload conforms; the subject is the SET's `sub_id` (SSF 1.0) or, in
 * older transmitters, the event's `subject`.
 */
export function readCaepEvent(claims: Record<string, unknown>): ReadEvent {
  const events = claims.events;
  if (!isRecord(events)) throw new NonConformingEvent('events must be a JSON object');
  const types = Object.keys(events);
  if (types.length !== 1)
    throw new NonConformingEvent(`a SET must carry exactly one event, not ${types.length}`);
  const type = types[0] as string;
  const payload = events[type];
  if (!isRecord(payload)) throw new NonConformingEvent('the event payload must be a JSON object');
  const name = type.startsWith(CAEP_EVENT_TYPE_PREFIX) ? type.slice(CAEP_EVENT_TYPE_PREFIX.length) : '';
  if (!(CAEP_EVENTS as readonly string[]).includes(name))
    throw new NonConformingEvent(`unknown event type ${JSON.stringify(type.slice(0, 200))}`, true);
  const subjectClaim = claims.sub_id ?? payload.subject;
  if (subjectClaim === undefined) throw new NonConformingEvent('the SET names no subject (sub_id)');
  const timestamp = payload.event_timestamp;
  if (timestamp !== undefined && !(Number.isSafeInteger(timestamp) && (timestamp as number) >= 0))
    throw new NonConformingEvent('event_timestamp must be a NumericDate');
  return {
    type,
    event: readPayload(name as CaepEventName, payload),
    subject: readSubject(subjectClaim, true),
    eventTimestamp: timestamp as number | undefined,
  };
}

function readPayload(name: CaepEventName, p: Record<string, unknown>): CaepEvent {
  switch (name) {
    case 'session-revoked':
      return { name };
    case 'credential-change': {
      const changeType = text(p, 'change_type');
      if (!['create', 'revoke', 'update', 'delete'].includes(changeType))
        throw new NonConformingEvent('change_type must be create, revoke, update or delete');
      return { name, credentialType: text(p, 'credential_type'), changeType };
    }
    case 'device-compliance-change': {
      const status = text(p, 'current_status');
      if (status !== 'compliant' && status !== 'not-compliant')
        throw new NonConformingEvent('current_status must be compliant or not-compliant');
      return { name, currentStatus: status };
    }
    case 'assurance-level-change':
      return { name, namespace: text(p, 'namespace'), currentLevel: text(p, 'current_level') };
    case 'token-claims-change':
      return { name, claims: readClaims(p.claims) };
    case 'risk-level-change': {
      const level = text(p, 'current_level').toLowerCase();
      if (level !== 'low' && level !== 'medium' && level !== 'high')
        throw new NonConformingEvent('current_level must be LOW, MEDIUM or HIGH');
      return { name, currentLevel: level };
    }
  }
}

/** The changed claims, as text: strings, numbers and booleans; other values are left out. */
function readClaims(claims: unknown): Record<string, string> {
  if (!isRecord(claims) || Object.keys(claims).length === 0)
    throw new NonConformingEvent('claims must be a non-empty JSON object');
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(claims).slice(0, MAX_CLAIMS)) {
    if (name.length > 64) continue;
    if (typeof value === 'string' && value.length <= MAX_TEXT) out[name] = value;
    else if (typeof value === 'number' || typeof value === 'boolean') out[name] = String(value);
  }
  return out;
}

function readSubject(value: unknown, top: boolean): Subject {
  if (!isRecord(value) || !isText(value.format)) throw new NonConformingEvent('a subject needs a format');
  switch (value.format) {
    case 'email':
      return { format: 'email', email: text(value, 'email') };
    case 'iss_sub':
      return { format: 'iss_sub', iss: text(value, 'iss'), sub: text(value, 'sub') };
    case 'opaque':
      return { format: 'opaque', id: text(value, 'id') };
    case 'account': {
      const uri = text(value, 'uri');
      if (!uri.startsWith('acct:')) throw new NonConformingEvent('an account subject is an acct: URI');
      return { format: 'account', uri };
    }
    case 'aliases': {
      const ids = value.identifiers;
      if (!top || !Array.isArray(ids) || ids.length === 0 || ids.length > 16)
        throw new NonConformingEvent('aliases needs 1 to 16 identifiers');
      return { format: 'aliases', identifiers: ids.map(readSimple) };
    }
    case 'complex': {
      if (!top) throw new NonConformingEvent('a complex subject cannot be nested');
      const subject: Subject = { format: 'complex' };
      if (value.user !== undefined) subject.user = readSimple(value.user);
      if (value.session !== undefined) subject.session = readSimple(value.session);
      return subject;
    }
    default:
      return { format: 'unsupported', name: value.format };
  }
}

function readSimple(value: unknown): SimpleSubject {
  const subject = readSubject(value, false);
  if (subject.format === 'aliases' || subject.format === 'complex')
    throw new NonConformingEvent('a nested subject must be a simple identifier');
  return subject;
}
