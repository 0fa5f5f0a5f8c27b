import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { SessionParams, SessionReceiptView } from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import { type SessionReceipt, sessionReceipt } from '../../sessions/session-receipt.js';
import { withProblems } from '../schemas/common.js';

const iso = (ms: number) => new Date(ms).toISOString();

function receiptView(r: SessionReceipt): SessionReceiptView {
  return {
    session: r.sessionId,
    state: r.state,
    ended_at: r.endedAt === null ? null : iso(r.endedAt),
    reason: r.reason,
    seq: r.seq,
    enforced: r.enforced,
    peps: r.peps.map((p) => ({
      id: p.principalId,
      name: p.name,
      applied: p.appliedSeq,
      last_seen_at: iso(p.lastSeenAt),
      live: p.live,
      enforced_at: p.enforcedAt === null ? null : iso(p.enforcedAt),
      instances: p.instances.map((i) => ({
        id: i.instanceId,
        applied: i.appliedSeq,
        last_seen_at: iso(i.lastSeenAt),
        enforced_at: i.enforcedAt === null ? null : iso(i.enforcedAt),
      })),
    })),
    pending: r.pending,
    credentials: r.credentials.map((c) => ({
      connector: c.connector,
      kind: c.kind,
      username: c.username,
      fingerprint: c.fingerprint,
      minted_at: iso(c.mintedAt),
      valid_until: iso(c.validUntil),
      destroyed_at: c.destroyedAt === null ? null : iso(c.destroyedAt),
      connections_terminated: c.connectionsTerminated,
    })),
    recording:
      r.recording === null
        ? null
        : {
            mode: r.recording.mode,
            chunks: r.recording.chunks,
            bytes: r.recording.bytes,
            digest: r.recording.digest,
            complete: r.recording.complete,
          },
  };
}

/** `GET /v1/sessions/:id/receipt`: when a session ended, and which enforcement points enforce it. */
export function receiptRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/sessions/:id/receipt',
      {
        schema: {
          tags: ['sessions'],
          summary: "A session's end, and which enforcement points have applied it",
          params: SessionParams,
          response: withProblems({ 200: SessionReceiptView }),
        },
      },
      async (request) => receiptView(await sessionReceipt(ctx, request.caller, request.params.id)),
    );
  };
}
