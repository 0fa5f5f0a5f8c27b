import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  ActivityQuery,
  AuditRecordList,
  CustomerList,
  CustomerParams,
  CustomerView,
  EligibleCustomerList,
  EmptyObject,
  IdParams,
  NewCustomerBody,
  NewRelationshipBody,
  RelationshipChangesBody,
  RelationshipList,
  RelationshipOutcome,
  RelationshipQuery,
  RelationshipView,
  SeatView,
  TakeSeatBody,
} from '@tether-broker/protocol/api';
import type { BrokerContext, Caller } from '../../core/context.js';
import { providerApproval, type Relationship, sideOf } from '../../domain/relationship.js';
import { operatorActivity } from '../../tenancy/activity.js';
import { addCustomer, listCustomers } from '../../tenancy/customers.js';
import {
  acceptRelationship,
  endRelationship,
  getRelationship,
  listRelationships,
  namesOf,
  narrowRelationshipBy,
  proposeRelationship,
} from '../../tenancy/relationships.js';
import { eligibleCustomers, takeSeat } from '../../tenancy/seats.js';
import { withProblems } from '../schemas/common.js';
import { auditRecordView, principalView, tenantView } from '../views.js';

const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));
/** The approvals of a body, in the use case's terms. */
const approvalsAsked = (
  a: { customer?: number; provider?: number; provider_approvers?: string[] } | undefined,
) => a && { customer: a.customer, provider: a.provider, providerApprovers: a.provider_approvers };

/** An RFC 3339 time the schema has validated, as epoch ms. */
const ms = (time: string | undefined) => (time === undefined ? undefined : Date.parse(time));

async function relationshipView(ctx: BrokerContext, caller: Caller, r: Relationship) {
  const names = await namesOf(ctx, r);
  return {
    id: r.id,
    name: r.name,
    provider: names.provider,
    customer: names.customer,
    side: sideOf(r, caller.tenant.id) ?? 'customer',
    state: r.state,
    groups: names.groups,
    privileges: names.privileges,
    approvals: {
      customer: r.approval.customer,
      provider: providerApproval(r.approval).count,
      provider_approvers: names.approvers,
    },
    starts_at: isoOrNull(r.startsAt),
    ends_at: iso(r.endsAt),
    proposed_at: iso(r.proposedAt),
    accepted_at: isoOrNull(r.acceptedAt),
    ended_at: isoOrNull(r.endedAt),
    end_reason: r.endReason,
  };
}

/**
 * The MSP operating model over the API: a provider's admin onboards customers and proposes
 * relationships; a customer's admin accepts, narrows or ends them; either side reads them; a
 * provider's operator lists where they may ask and takes their seat there.
 */
export function tenancyRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['tenancy'];
    app.post(
      '/customers',
      { schema: { tags, body: NewCustomerBody, response: withProblems({ 201: CustomerView }) } },
      async (request, reply) => {
        const { body } = request;
        const made = await addCustomer(ctx, request.caller, {
          name: body.name,
          displayName: body.display_name,
          timeZone: body.time_zone,
          admin: { name: body.admin.name, publicJwk: body.admin.key },
        });
        return reply.code(201).send({ tenant: tenantView(made.tenant), admin: principalView(made.admin) });
      },
    );
    app.get(
      '/customers',
      { schema: { tags, response: withProblems({ 200: CustomerList }) } },
      async (request) => ({
        customers: (await listCustomers(ctx, request.caller)).map(tenantView),
      }),
    );
    app.get(
      '/customers/:name/activity',
      {
        schema: {
          tags,
          params: CustomerParams,
          querystring: ActivityQuery,
          response: withProblems({ 200: AuditRecordList }),
        },
      },
      async (request) => ({
        records: (await operatorActivity(ctx, request.caller, request.params.name, request.query)).map(
          auditRecordView,
        ),
      }),
    );
    app.post(
      '/relationships',
      { schema: { tags, body: NewRelationshipBody, response: withProblems({ 201: RelationshipView }) } },
      async (request, reply) => {
        const { body } = request;
        const r = await proposeRelationship(ctx, request.caller, {
          customer: body.customer,
          name: body.name,
          groups: body.groups,
          privileges: body.privileges,
          approvals: approvalsAsked(body.approvals),
          startsAt: ms(body.starts_at),
          endsAt: ms(body.ends_at) as number,
        });
        return reply.code(201).send(await relationshipView(ctx, request.caller, r));
      },
    );
    app.get(
      '/relationships',
      { schema: { tags, querystring: RelationshipQuery, response: withProblems({ 200: RelationshipList }) } },
      async (request) => {
        const list = await listRelationships(ctx, request.caller, request.query);
        return {
          relationships: await Promise.all(list.map((r) => relationshipView(ctx, request.caller, r))),
        };
      },
    );
    app.get(
      '/relationships/:id',
      { schema: { tags, params: IdParams, response: withProblems({ 200: RelationshipView }) } },
      async (request) =>
        relationshipView(ctx, request.caller, await getRelationship(ctx, request.caller, request.params.id)),
    );
    app.post(
      '/relationships/:id/accept',
      {
        schema: {
          tags,
          params: IdParams,
          body: EmptyObject,
          response: withProblems({ 200: RelationshipView }),
        },
      },
      async (request) =>
        relationshipView(
          ctx,
          request.caller,
          await acceptRelationship(ctx, request.caller, request.params.id),
        ),
    );
    app.post(
      '/relationships/:id/end',
      {
        schema: {
          tags,
          params: IdParams,
          body: EmptyObject,
          response: withProblems({ 200: RelationshipOutcome }),
        },
      },
      async (request) => {
        const done = await endRelationship(ctx, request.caller, request.params.id);
        return {
          relationship: await relationshipView(ctx, request.caller, done.relationship),
          sessions_ended: done.sessionsEnded,
          requests_cancelled: done.requestsCancelled,
        };
      },
    );
    app.patch(
      '/relationships/:id',
      {
        schema: {
          tags,
          params: IdParams,
          body: RelationshipChangesBody,
          response: withProblems({ 200: RelationshipOutcome }),
        },
      },
      async (request) => {
        const { body } = request;
        const done = await narrowRelationshipBy(ctx, request.caller, request.params.id, {
          groups: body.groups,
          privileges: body.privileges,
          endsAt: ms(body.ends_at),
          approvals: approvalsAsked(body.approvals),
        });
        return {
          relationship: await relationshipView(ctx, request.caller, done.relationship),
          sessions_ended: done.sessionsEnded,
          requests_cancelled: done.requestsCancelled,
        };
      },
    );
    app.get(
      '/seats',
      { schema: { tags, response: withProblems({ 200: EligibleCustomerList }) } },
      async (request) => ({
        customers: (await eligibleCustomers(ctx, request.caller)).map((c) => ({
          name: c.customer.name,
          display_name: c.customer.displayName,
          privileges: c.privileges.map((p) => ({
            name: p.name,
            relationship: p.relationship,
            ends_at: iso(p.endsAt),
          })),
        })),
      }),
    );
    app.post(
      '/seats',
      { schema: { tags, body: TakeSeatBody, response: withProblems({ 200: SeatView }) } },
      async (request) => {
        const { customer, seat } = await takeSeat(ctx, request.caller, request.body.customer);
        return { customer: customer.name, tenant: customer.id, principal: principalView(seat) };
      },
    );
  };
}
