import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  Deleted,
  NewPrivilegeBody,
  PrivilegeChangesBody,
  PrivilegeList,
  PrivilegeQuery,
  PrivilegeView,
  RefParams,
} from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import {
  changePrivilege,
  createPrivilege,
  findPrivileges,
  getPrivilege,
  type PrivilegeChanges,
  type PrivilegeInput,
  removePrivilege,
} from '../../records/privileges.js';
import { eligiblePrivileges } from '../../requests/eligible-privileges.js';
import { withProblems } from '../schemas/common.js';
import { privilegeView } from '../views.js';

/** API field names (seconds as `max_duration`, `token_ttl`, `idle_timeout`) to the service's input. */
function fromBody<
  T extends {
    max_duration?: number | undefined;
    token_ttl?: number | undefined;
    idle_timeout?: number | null | undefined;
  },
>(body: T) {
  const { max_duration, token_ttl, idle_timeout, ...rest } = body;
  return {
    ...rest,
    maxDurationSeconds: max_duration,
    tokenTtlSeconds: token_ttl,
    idleTimeoutSeconds: idle_timeout,
  };
}

export function privilegeRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/privileges',
      {
        schema: {
          tags: ['privileges'],
          querystring: PrivilegeQuery,
          response: withProblems({ 200: PrivilegeList }),
        },
      },
      async (request) => {
        const privileges = request.query.eligible
          ? await eligiblePrivileges(ctx, request.caller)
          : await findPrivileges(ctx, request.caller);
        return { privileges: privileges.map(privilegeView) };
      },
    );
    app.post(
      '/privileges',
      {
        schema: {
          tags: ['privileges'],
          body: NewPrivilegeBody,
          response: withProblems({ 201: PrivilegeView }),
        },
      },
      async (request, reply) =>
        reply
          .code(201)
          .send(
            privilegeView(
              await createPrivilege(ctx, request.caller, fromBody(request.body) as PrivilegeInput),
            ),
          ),
    );
    app.get(
      '/privileges/:ref',
      { schema: { tags: ['privileges'], params: RefParams, response: withProblems({ 200: PrivilegeView }) } },
      async (request) => privilegeView(await getPrivilege(ctx, request.caller, request.params.ref)),
    );
    app.patch(
      '/privileges/:ref',
      {
        schema: {
          tags: ['privileges'],
          params: RefParams,
          body: PrivilegeChangesBody,
          response: withProblems({ 200: PrivilegeView }),
        },
      },
      async (request) =>
        privilegeView(
          await changePrivilege(
            ctx,
            request.caller,
            request.params.ref,
            fromBody(request.body) as PrivilegeChanges,
          ),
        ),
    );
    app.delete(
      '/privileges/:ref',
      { schema: { tags: ['privileges'], params: RefParams, response: withProblems({ 200: Deleted }) } },
      async (request) => {
        await removePrivilege(ctx, request.caller, request.params.ref);
        return { deleted: true };
      },
    );
  };
}
