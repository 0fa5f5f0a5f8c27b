import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  DecisionReportBody,
  DecisionReportView,
  PepAckBody,
  PepAckView,
  PepAudiencesBody,
  PepAudiencesView,
  PepParams,
} from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import type { EnforcementMetrics } from '../../enforcement/enforcement-metrics.js';
import { acknowledgeRevocations } from '../../enforcement/pep-ack.js';
import { recordDecisions } from '../../enforcement/record-decisions.js';
import { getPepAudiences, type PepAudiences, setPepAudiences } from '../../records/pep-audiences.js';
import { withProblems } from '../schemas/common.js';

const audiencesView = (a: PepAudiences) => ({
  pep: a.principal.id,
  name: a.principal.name,
  audiences: a.audiences,
});

/** What enforcement points report: how far they applied the revocation log, and their decisions. */
export function pepRoutes(ctx: BrokerContext, metrics: EnforcementMetrics): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/peps/:pep/ack',
      {
        schema: {
          tags: ['enforcement'],
          summary: 'Acknowledge the revocation log up to a position (cumulative; the PEP itself only)',
          params: PepParams,
          body: PepAckBody,
          response: withProblems({ 200: PepAckView }),
        },
      },
      async (request) =>
        acknowledgeRevocations(
          ctx,
          request.caller,
          request.params.pep,
          request.body.applied,
          metrics,
          request.body.instance,
          request.body.leaving === true,
        ),
    );
    app.get(
      '/peps/:pep/audiences',
      {
        schema: {
          tags: ['enforcement'],
          summary: 'The audiences a PEP enforces (admins, auditors, the PEP itself)',
          params: PepParams,
          response: withProblems({ 200: PepAudiencesView }),
        },
      },
      async (request) => audiencesView(await getPepAudiences(ctx, request.caller, request.params.pep)),
    );
    app.put(
      '/peps/:pep/audiences',
      {
        schema: {
          tags: ['enforcement'],
          summary: 'Set the audiences a PEP enforces: it may record decisions only for these (admins)',
          params: PepParams,
          body: PepAudiencesBody,
          response: withProblems({ 200: PepAudiencesView }),
        },
      },
      async (request) =>
        audiencesView(await setPepAudiences(ctx, request.caller, request.params.pep, request.body.audiences)),
    );
    app.post(
      '/decisions',
      {
        schema: {
          tags: ['enforcement'],
          summary: "Record a batch of a PEP's decisions in the audit trail",
          body: DecisionReportBody,
          response: withProblems({ 202: DecisionReportView }),
        },
      },
      async (request, reply) =>
        reply.code(202).send(await recordDecisions(ctx, request.caller, request.body, metrics)),
    );
  };
}
