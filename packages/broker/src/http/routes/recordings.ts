import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  RecordingChunkBody,
  RecordingSummary,
  RecordingView,
  SessionParams,
} from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import type { Recording } from '../../domain/recording.js';
import { acceptChunk, readRecording } from '../../recordings/recording-chunks.js';
import { withProblems } from '../schemas/common.js';

export function recordingSummary(r: Recording): RecordingSummary {
  return {
    session_id: r.sessionId,
    mode: r.mode,
    chunks: r.chunks,
    bytes: r.bytes,
    digest: r.digest,
    complete: r.complete,
  };
}

/**
 * `/v1/sessions/:id/recording`: the holder of a session that must run recorded streams its
 * recording here, chunk by signed chunk (POST); auditors and admins read it whole (GET).
 */
export function recordingRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  // JSON escapes a terminal's control bytes as \u00XX: six bytes of body per byte of chunk.
  const bodyLimit = ctx.config.limits.recordingChunkBytes * 6 + 8192;
  return async (app) => {
    app.post(
      '/sessions/:id/recording',
      {
        bodyLimit,
        schema: {
          tags: ['sessions'],
          summary:
            "The holder adds the next signed chunk of the session's recording (empty data: a heartbeat)",
          params: SessionParams,
          body: RecordingChunkBody,
          response: withProblems({ 200: RecordingSummary }),
        },
      },
      async (request) =>
        recordingSummary(await acceptChunk(ctx, request.caller, request.params.id, request.body)),
    );
    app.get(
      '/sessions/:id/recording',
      {
        schema: {
          tags: ['sessions'],
          summary: "The session's recording, asciicast v2 (auditors and admins)",
          params: SessionParams,
          response: withProblems({ 200: RecordingView }),
        },
      },
      async (request) => {
        const { recording, cast, intact } = await readRecording(ctx, request.caller, request.params.id);
        return { ...recordingSummary(recording), intact, cast };
      },
    );
  };
}
