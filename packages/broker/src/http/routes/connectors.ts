import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { DpopError } from '@tether-broker/pep';
import { TetherError } from '@tether-broker/protocol';
import {
  CollectedCredentialsView,
  ConnectorList,
  ConnectorRefParams,
  ConnectorView,
  Deleted,
  NewConnectorBody,
  SessionParams,
} from '@tether-broker/protocol/api';
import {
  createConnector,
  findConnectors,
  getConnector,
  removeConnector,
} from '../../connectors/connectors.js';
import { type CollectedCredential, collectCredentials } from '../../connectors/credentials.js';
import { verifyBrokerProof } from '../../core/broker-dpop.js';
import type { BrokerContext } from '../../core/context.js';
import type { Connector } from '../../domain/connector.js';
import { emptyBodyAsObject, withProblems } from '../schemas/common.js';

const iso = (ms: number) => new Date(ms).toISOString();

export function connectorView(c: Connector): ConnectorView {
  return {
    id: c.id,
    name: c.name,
    kind: c.kind,
    target: c.settings.target,
    grant_roles: c.settings.grantRoles,
    created_at: iso(c.createdAt),
  };
}

export function credentialView(c: CollectedCredential) {
  return {
    connector: c.connector,
    kind: c.kind,
    username: c.username,
    secret: c.secret,
    valid_until: iso(c.validUntil),
  };
}

/**
 * `/v1/connectors`: downstream systems where sessions get credentials of their own (admins
 * create and remove; auditors read); `POST /v1/sessions/:id/credentials`: the holder collects
 * its session's credentials, once.
 */
export function connectorRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/connectors',
      { schema: { tags: ['connectors'], response: withProblems({ 200: ConnectorList }) } },
      async (request) => ({ connectors: (await findConnectors(ctx, request.caller)).map(connectorView) }),
    );
    app.post(
      '/connectors',
      {
        schema: {
          tags: ['connectors'],
          body: NewConnectorBody,
          response: withProblems({ 201: ConnectorView }),
        },
      },
      async (request, reply) => {
        const body = request.body;
        const created = await createConnector(ctx, request.caller, {
          name: body.name,
          kind: body.kind,
          url: body.url,
          grantRoles: body.kind === 'postgres' ? body.grant_roles : [],
        });
        return reply.code(201).send(connectorView(created));
      },
    );
    app.get(
      '/connectors/:ref',
      {
        schema: {
          tags: ['connectors'],
          params: ConnectorRefParams,
          response: withProblems({ 200: ConnectorView }),
        },
      },
      async (request) => connectorView(await getConnector(ctx, request.caller, request.params.ref)),
    );
    app.delete(
      '/connectors/:ref',
      {
        schema: {
          tags: ['connectors'],
          params: ConnectorRefParams,
          response: withProblems({ 200: Deleted }),
        },
      },
      async (request) => {
        await removeConnector(ctx, request.caller, request.params.ref);
        return { deleted: true };
      },
    );
    app.post(
      '/sessions/:id/credentials',
      {
        preValidation: emptyBodyAsObject,
        schema: {
          tags: ['sessions'],
          summary: "The holder collects the session's downstream credentials (each value answered once)",
          params: SessionParams,
          body: Type.Object({}, { additionalProperties: false }),
          response: withProblems({ 200: CollectedCredentialsView }),
        },
      },
      async (request, reply) => {
        // A DPoP-bound API token's proof was spent authenticating; otherwise the header's own.
        const proof =
          request.caller.proof ??
          (await verifyBrokerProof(ctx, request.headers.dpop, {
            method: 'POST',
            path: `/v1/sessions/${request.params.id}/credentials`,
          }).catch((err: unknown) => {
            if (err instanceof DpopError) throw new TetherError(err.code, err.message);
            throw err;
          }));
        const collected = await collectCredentials(ctx, request.caller, request.params.id, proof);
        return reply
          .header('cache-control', 'no-store')
          .send({ credentials: collected.credentials.map(credentialView), pending: collected.pending });
      },
    );
  };
}
