import { type Static, Type } from '@sinclair/typebox';
import { Timestamp } from './common.js';

/** A public JWK, as trust records and signal transmitters hold them. */
export const Jwk = Type.Record(Type.String({ maxLength: 16 }), Type.Unknown(), {
  maxProperties: 24,
  description: 'a public JWK',
});

/** A trust record for workload token exchange (`/v1/federations`). */
export const FederationView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  issuer: Type.String(),
  audience: Type.String(),
  jwks_uri: Type.Union([Type.String(), Type.Null()]),
  jwks: Type.Union([Type.Object({ keys: Type.Array(Jwk) }), Type.Null()]),
  algorithms: Type.Array(Type.String()),
  principal_mapping: Type.Array(
    Type.Object({
      match: Type.Record(Type.String(), Type.String()),
      principal: Type.String({ description: 'principal id' }),
    }),
  ),
  context_claims: Type.Array(Type.String()),
  task_claim: Type.String(),
  max_token_age: Type.Integer({ description: 'seconds' }),
  ends_with_subject_token: Type.Boolean({
    description: 'sessions end, at the latest, when the subject token expires (its exp)',
  }),
  created_at: Timestamp,
});
export type FederationView = Static<typeof FederationView>;

export const FederationList = Type.Object({ federations: Type.Array(FederationView) });
export type FederationList = Static<typeof FederationList>;
