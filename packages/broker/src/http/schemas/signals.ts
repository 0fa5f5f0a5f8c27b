import { Type } from '@sinclair/typebox';
import { SIGNAL_LIMITS } from '../../domain/transmitter.js';
import { SET_ERROR_CODES } from '../../signals/set-verify.js';
import { Name, Strict, Timestamp } from './common.js';

const Jwk = Type.Record(Type.String({ maxLength: 16 }), Type.Unknown(), {
  maxProperties: 24,
  description: 'a public JWK',
});
const Jwks = Type.Object({ keys: Type.Array(Jwk, { minItems: 1, maxItems: 16 }) }, Strict);

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

export const TransmitterList = Type.Object({ transmitters: Type.Array(TransmitterView) });

/** The pushed SET: the compact JWS itself, sent as application/secevent+jwt. */
export const SetBody = Type.String({ minLength: 1, maxLength: SIGNAL_LIMITS.maxBodyBytes });

/** RFC 8935 §2.4: the error answer of a push (not problem+json). */
export const SetErrorBody = Type.Object({
  err: Type.Union([...SET_ERROR_CODES, 'server_error'].map((c) => Type.Literal(c))),
  description: Type.String(),
});
