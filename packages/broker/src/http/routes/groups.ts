import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  Changed,
  Deleted,
  GroupList,
  GroupView,
  MemberParams,
  NewGroupBody,
  RefParams,
} from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import { createGroup, findGroups, getGroup, removeGroup, setGroupMembership } from '../../records/groups.js';
import { withProblems } from '../schemas/common.js';
import { groupView } from '../views.js';

export function groupRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/groups',
      {
        schema: {
          tags: ['groups'],
          response: withProblems({ 200: GroupList }),
        },
      },
      async (request) => ({ groups: (await findGroups(ctx, request.caller)).map((g) => groupView(g)) }),
    );
    app.post(
      '/groups',
      { schema: { tags: ['groups'], body: NewGroupBody, response: withProblems({ 201: GroupView }) } },
      async (request, reply) =>
        reply.code(201).send(groupView(await createGroup(ctx, request.caller, request.body), [])),
    );
    app.get(
      '/groups/:ref',
      { schema: { tags: ['groups'], params: RefParams, response: withProblems({ 200: GroupView }) } },
      async (request) => {
        const { group, members } = await getGroup(ctx, request.caller, request.params.ref);
        return groupView(group, members);
      },
    );
    app.delete(
      '/groups/:ref',
      { schema: { tags: ['groups'], params: RefParams, response: withProblems({ 200: Deleted }) } },
      async (request) => {
        await removeGroup(ctx, request.caller, request.params.ref);
        return { deleted: true };
      },
    );
    app.put(
      '/groups/:ref/members/:principal',
      { schema: { tags: ['groups'], params: MemberParams, response: withProblems({ 200: Changed }) } },
      async (request) =>
        setGroupMembership(ctx, request.caller, request.params.ref, request.params.principal, true),
    );
    app.delete(
      '/groups/:ref/members/:principal',
      { schema: { tags: ['groups'], params: MemberParams, response: withProblems({ 200: Changed }) } },
      async (request) =>
        setGroupMembership(ctx, request.caller, request.params.ref, request.params.principal, false),
    );
  };
}
