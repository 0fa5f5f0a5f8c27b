import { type Static, Type } from '@sinclair/typebox';
import { Name, Ref, Strict, Timestamp } from './common.js';

/**
 * A connector (`/v1/connectors`): a downstream system where each session of a privilege naming
 * it gets a credential of its own, destroyed when the session ends. Its connection URL is
 * sealed and never answered.
 */
export const ConnectorView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: Type.Union([Type.Literal('postgres'), Type.Literal('webhook')]),
  target: Type.String({ description: 'where it points: scheme, host, port and database (no credentials)' }),
  grant_roles: Type.Array(Type.String()),
  created_at: Timestamp,
});
export type ConnectorView = Static<typeof ConnectorView>;
export const ConnectorList = Type.Object({ connectors: Type.Array(ConnectorView) });
export type ConnectorList = Static<typeof ConnectorList>;

const RoleName = Type.String({ pattern: '^[a-z_][a-z0-9_$]{0,62}$', description: 'a PostgreSQL role name' });

/** A PostgreSQL connector: each session gets a login role, dropped (its connections cut) at its end. */
const NewPostgresConnector = Type.Object(
  {
    name: Name,
    kind: Type.Literal('postgres'),
    url: Type.String({
      minLength: 1,
      maxLength: 2048,
      description:
        'the admin connection URL (postgres://user:password@host:port/db) of a role with CREATEROLE; sealed at rest, never answered',
    }),
    grant_roles: Type.Array(RoleName, {
      maxItems: 16,
      uniqueItems: true,
      description: "roles each session's login role is made a member of",
    }),
  },
  Strict,
);

/**
 * A webhook connector: for anything else (an appliance's admin accounts, a cloud's temporary
 * roles), Tether POSTs a JWS it signed (`application/jwt`, `typ` `tether-connector+jwt`) to
 * create the session's credential and to destroy it.
 */
const NewWebhookConnector = Type.Object(
  {
    name: Name,
    kind: Type.Literal('webhook'),
    url: Type.String({
      minLength: 1,
      maxLength: 2048,
      description: 'the https URL Tether POSTs signed create and destroy calls to (sealed at rest)',
    }),
  },
  Strict,
);

/** The body of `POST /v1/connectors`. */
export const NewConnectorBody = Type.Union([NewPostgresConnector, NewWebhookConnector]);
export type NewConnectorBody = Static<typeof NewConnectorBody>;

export const ConnectorRefParams = Type.Object({ ref: Ref }, Strict);
export type ConnectorRefParams = Static<typeof ConnectorRefParams>;
