import { type Static, Type } from '@sinclair/typebox';
import { Strict, Timestamp } from './common.js';

/** A scope token as RFC 6749 spells it (printable ASCII without space, quote or backslash). */
const Scope = Type.String({ minLength: 1, maxLength: 64, pattern: '^[\\x21\\x23-\\x5b\\x5d-\\x7e]+$' });
/** An ID token claim or a principal attribute name. */
const claimName = (description: string) =>
  Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$', description });

/**
 * `PUT /v1/console/oidc`: the tenant's company OpenID Connect provider for console sign-in.
 * `client_secret` is required the first time and kept (sealed) when left out later.
 */
export const ConsoleOidcBody = Type.Object(
  {
    issuer: Type.String({
      minLength: 1,
      maxLength: 2048,
      description: 'the provider’s issuer URL (discovery at <issuer>/.well-known/openid-configuration)',
    }),
    client_id: Type.String({ minLength: 1, maxLength: 512, pattern: '^[\\x21-\\x7e]+$' }),
    client_secret: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1024,
        description: 'a credential: sealed at rest, never answered, logged or audited',
      }),
    ),
    scopes: Type.Optional(
      Type.Array(Scope, {
        minItems: 1,
        maxItems: 20,
        uniqueItems: true,
        description: 'default openid email profile; must include openid',
      }),
    ),
    claim: Type.Optional(claimName('the ID token claim that names the person (default email)')),
    attribute: Type.Optional(claimName('the principal attribute the claim must equal (default email)')),
  },
  Strict,
);
export type ConsoleOidcBody = Static<typeof ConsoleOidcBody>;

/** The tenant's OIDC sign-in as answered: never its client secret. */
export const ConsoleOidcView = Type.Object({
  id: Type.String(),
  issuer: Type.String(),
  client_id: Type.String(),
  scopes: Type.Array(Type.String()),
  claim: Type.String(),
  attribute: Type.String(),
  redirect_uri: Type.String({ description: 'register this redirect URI with the provider' }),
  sign_in_url: Type.String({ description: 'where people of this tenant start signing in' }),
  created_by: Type.String(),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type ConsoleOidcView = Static<typeof ConsoleOidcView>;

/** `GET /console/api/sign-in-methods?tenant=<name>`: the same shape for any name, known or not. */
export const SignInMethodsQuery = Type.Object(
  { tenant: Type.Optional(Type.String({ maxLength: 128 })) },
  Strict,
);
export type SignInMethodsQuery = Static<typeof SignInMethodsQuery>;
export const SignInMethods = Type.Object({ oidc: Type.Boolean() });
export type SignInMethods = Static<typeof SignInMethods>;
