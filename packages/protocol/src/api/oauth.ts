import { type Static, Type } from '@sinclair/typebox';

/**
 * The OAuth side of the broker: the token endpoint's answer (RFC 6749 §5.1, RFC 8693 §2.2.1,
 * RFC 9449 §5), introspection (RFC 7662 §2.2), the authorization server's metadata (RFC 8414
 * §2) and its key set. Their requests are forms the broker reads itself, so only answers live
 * here.
 */

/** `POST /oauth/token`, on success. */
export const TokenResponse = Type.Object({
  access_token: Type.String(),
  /** `DPoP` when the token is bound to a key (RFC 9449 §5), else `Bearer`. */
  token_type: Type.String(),
  expires_in: Type.Integer(),
  scope: Type.Optional(Type.String()),
  refresh_token: Type.Optional(Type.String()),
  /** RFC 8693: what kind of token a token exchange issued. */
  issued_token_type: Type.Optional(Type.String()),
  /** Tether's: the session a session token belongs to. */
  session_id: Type.Optional(Type.String()),
});
export type TokenResponse = Static<typeof TokenResponse>;

/** `POST /oauth/introspect`: `active`, and when active the token's claims (RFC 7662 §2.2). */
export const IntrospectionResponse = Type.Object({ active: Type.Boolean() }, { additionalProperties: true });
export type IntrospectionResponse = Static<typeof IntrospectionResponse>;

/** `GET /.well-known/oauth-authorization-server` (RFC 8414 §2). */
export const AuthorizationServerMetadata = Type.Object({
  issuer: Type.String(),
  token_endpoint: Type.String(),
  device_authorization_endpoint: Type.Optional(Type.String()),
  jwks_uri: Type.String(),
  introspection_endpoint: Type.String(),
  revocation_endpoint: Type.String(),
  grant_types_supported: Type.Array(Type.String()),
  dpop_signing_alg_values_supported: Type.Array(Type.String()),
  introspection_endpoint_auth_methods_supported: Type.Array(Type.String()),
  revocation_endpoint_auth_methods_supported: Type.Array(Type.String()),
  authorization_details_types_supported: Type.Array(Type.String()),
  token_endpoint_auth_methods_supported: Type.Array(Type.String()),
  token_endpoint_auth_signing_alg_values_supported: Type.Array(Type.String()),
  response_types_supported: Type.Array(Type.String()),
  service_documentation: Type.String(),
});
export type AuthorizationServerMetadata = Static<typeof AuthorizationServerMetadata>;

/** `GET /.well-known/jwks.json`: the public keys tokens are signed with (RFC 7517 §5). */
export const JwkSet = Type.Object({ keys: Type.Array(Type.Record(Type.String(), Type.Unknown())) });
export type JwkSet = Static<typeof JwkSet>;
