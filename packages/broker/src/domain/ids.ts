import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'; // Crockford base32, lower case

/** Record id kinds and their prefixes; a prefix says what an id names. */
export const ID_PREFIX = {
  tenant: 'ten',
  principal: 'prn',
  group: 'grp',
  privilege: 'prv',
  request: 'req',
  audit: 'aud',
  session: 'ses',
  federation: 'fed',
  webhook: 'whk',
  signalTransmitter: 'stx',
  reevaluationJob: 'rej',
  stream: 'stm',
  connector: 'cnr',
  connectorJob: 'cnj',
  evaluation: 'evl',
  notificationChannel: 'ntc',
  notification: 'ntf',
  deviceLogin: 'dvl',
  relationship: 'rel',
} as const;
export type IdKind = keyof typeof ID_PREFIX;

/** 130 random bits, base32: `prn_0f3k…` (26 characters after the prefix). */
export function newId(kind: IdKind): string {
  const bytes = randomBytes(17);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 26) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return `${ID_PREFIX[kind]}_${out}`;
}

const ID_SHAPE = /^([a-z]{3})_[0-9a-z]{26}$/;

/** Whether `ref` is an id of the given kind (as opposed to a name). */
export function isIdOf(kind: IdKind, ref: string): boolean {
  const match = ID_SHAPE.exec(ref);
  return match !== null && match[1] === ID_PREFIX[kind];
}
