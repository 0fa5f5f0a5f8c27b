import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AuditQuery, AuditRecordList, AuditVerificationView } from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import { queryAudit, verifyAudit } from '../../records/audit-trail.js';
import { withProblems } from '../schemas/common.js';
import { auditRecordView, auditVerificationView } from '../views.js';

const ms = (iso: string | undefined) => (iso === undefined ? undefined : Date.parse(iso));

export function auditRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/audit',
      {
        schema: {
          tags: ['audit'],
          querystring: AuditQuery,
          response: withProblems({ 200: AuditRecordList }),
        },
      },
      async (request) => {
        const q = request.query;
        const records = await queryAudit(ctx, request.caller, {
          ...q,
          since: ms(q.since),
          until: ms(q.until),
        });
        return { records: records.map(auditRecordView) };
      },
    );
    app.get(
      '/audit/verify',
      { schema: { tags: ['audit'], response: withProblems({ 200: AuditVerificationView }) } },
      async (request) => auditVerificationView(await verifyAudit(ctx, request.caller)),
    );
  };
}
