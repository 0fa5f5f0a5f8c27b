import { type Static, Type } from '@sinclair/typebox';
import { Name, Strict, Timestamp } from './common.js';
import { Jwk } from './federations.js';

const Jwks = Type.Object({ keys: Type.Array(Jwk, { minItems: 1, maxItems: 16 }) }, Strict);

/** Registering a CAEP transmitter whose SETs the broker accepts (`POST /v1/signal-transmitters`). */
export const NewTransmitterBody = Type.Object(
  {
    name: Name,
    issuer: Type.String({ minLength: 1, maxLength: 512, description: 'the exact iss of its SETs' }),
    audience: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 512,
        description:
          "the aud its SETs carry; default the broker's public URL. (issuer, audience) is unique across all tenants",
      }),
    ),
    jwks_uri: Type.Optional(
      Type.String({ minLength: 1, maxLength: 2048, description: 'https (http only on loopback)' }),
    ),
    jwks: Type.Optional(Jwks),
  },
  Strict,
);
export type NewTransmitterBody = Static<typeof NewTransmitterBody>;

/** A registered CAEP transmitter (`/v1/signal-transmitters`). */
export const TransmitterView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  issuer: Type.String(),
  audience: Type.String(),
  jwks_uri: Type.Union([Type.String(), Type.Null()]),
  jwks: Type.Union([Type.Object({ keys: Type.Array(Jwk) }), Type.Null()]),
  push_url: Type.String({ description: 'where the transmitter pushes its SETs (RFC 8935)' }),
  created_by: Type.String(),
  created_at: Timestamp,
});
export type TransmitterView = Static<typeof TransmitterView>;

export const TransmitterList = Type.Object({ transmitters: Type.Array(TransmitterView) });
export type TransmitterList = Static<typeof TransmitterList>;
