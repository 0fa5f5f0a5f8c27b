import { DPOP_DEFAULTS } from '@tether-broker/pep';
import { type ErrorCode, isTetherError, PROBLEM_MEDIA_TYPE, toProblem } from '@tether-broker/protocol';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OAuthError } from '../auth/oauth-error.js';
import { isStoreUnavailable } from '../store/faults.js';

/** What a 503 `store_unavailable` tells the caller to wait before trying again, in seconds. */
export const STORE_RETRY_AFTER_SECONDS = 5;

/** Fastify's own client errors, by code, mapped onto our catalogue. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_request',
  FST_ERR_CTP_EMPTY_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_TYPE: 'unsupported_media_type',
  FST_ERR_BAD_URL: 'invalid_request',
  FST_ERR_MAX_PARAM_LENGTH: 'invalid_request',
  FST_ERR_ASYNC_CONSTRAINT: 'invalid_request',
};

function isOAuthRoute(request: FastifyRequest): boolean {
  return request.url.startsWith('/oauth/');
}

interface ClassifiedError {
  code: ErrorCode;
  detail: string;
  extra?: Readonly<Record<string, unknown>>;
}

/** What the client may be told. Anything unrecognised is internal, and its text stays in the log. */
function classify(err: FastifyError | Error): ClassifiedError {
  if (isTetherError(err))
    return { code: err.code, detail: err.detail, ...(err.extra ? { extra: err.extra } : {}) };
  const fastifyError = err as FastifyError;
  if (fastifyError.validation) {
    const errors = fastifyError.validation.map((v) => ({
      path: `${fastifyError.validationContext ?? ''}${v.instancePath || ''}`,
      message: v.message ?? 'is invalid',
    }));
    return {
      code: 'invalid_request',
      detail: errors.map((e) => `${e.path} ${e.message}`).join('; '),
      extra: { errors },
    };
  }
  // A store that cannot be reached, written or answered in time is the server's fault and
  // passes: the caller is told to retry, never that its request was wrong.
  if (isStoreUnavailable(err))
    return { code: 'store_unavailable', detail: 'the store is not reachable right now; retry later' };
  const mapped = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (mapped) return { code: mapped, detail: fastifyError.message };
  if (
    typeof fastifyError.statusCode === 'number' &&
    fastifyError.statusCode >= 400 &&
    fastifyError.statusCode < 500
  ) {
    return { code: 'invalid_request', detail: 'the request could not be processed' };
  }
  return { code: 'internal_error', detail: 'internal error; the request id is in the broker log' };
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof OAuthError) {
      request.log.info({ oauth_error: err.error, reason: err.message }, 'oauth request refused');
      // RFC 6749 §5.2 / RFC 6750 §3 / RFC 9110 §15.5.2: every 401 carries a challenge. The token
      // endpoint authenticates clients by assertion (RFC 7523), which has no HTTP scheme of its own.
      if (err.status === 401)
        reply.header('www-authenticate', err.challenge ?? `Bearer realm="tether", error="${err.error}"`);
      return reply
        .code(err.status)
        .header('cache-control', 'no-store')
        .type('application/json')
        .send(err.toBody());
    }
    const c = classify(err);
    if (c.code === 'internal_error') request.log.error({ err }, 'unhandled error');
    else if (c.code === 'store_unavailable') {
      request.log.error({ err }, 'store unavailable');
      reply.header('retry-after', String(STORE_RETRY_AFTER_SECONDS));
    } else request.log.info({ code: c.code }, 'request refused');
    if (isOAuthRoute(request)) {
      // RFC 6749 names `server_error` and `temporarily_unavailable` for server faults (§4.1.2.1);
      // a fault of ours is never reported as the client's `invalid_request`.
      const [status, error] =
        c.code === 'internal_error'
          ? [500, 'server_error']
          : c.code === 'store_unavailable'
            ? [503, 'temporarily_unavailable']
            : [400, 'invalid_request'];
      return reply
        .code(status)
        .header('cache-control', 'no-store')
        .type('application/json')
        .send({ error, error_description: c.detail });
    }
    const problem = { ...toProblem(c.code, c.detail, c.extra), instance: request.id };
    if (problem.status === 401) {
      // RFC 6750 §3.1: a request that sent no credentials at all gets a challenge without an error code.
      // RFC 9449 §7.1: DPoP failures are challenged with the DPoP scheme and the accepted algs.
      const dpopAlgs = `algs="${DPOP_DEFAULTS.algorithms.join(' ')}"`;
      const usedDpop = /^dpop\s/i.test(request.headers.authorization ?? '');
      const challenge =
        c.code === 'invalid_dpop_proof' || c.code === 'use_dpop_nonce'
          ? `DPoP error="${c.code}", ${dpopAlgs}`
          : c.code !== 'unauthenticated'
            ? usedDpop
              ? `DPoP error="invalid_token", ${dpopAlgs}`
              : 'Bearer error="invalid_token"'
            : request.headers.authorization === undefined
              ? `Bearer realm="tether", DPoP ${dpopAlgs}`
              : 'Bearer error="invalid_request"';
      reply.header('www-authenticate', challenge);
    }
    return reply.code(problem.status).type(PROBLEM_MEDIA_TYPE).send(problem);
  });

  app.setNotFoundHandler((request, reply) => {
    const problem = {
      ...toProblem('route_not_found', `no route ${request.method} ${request.url.split('?')[0]}`),
      instance: request.id,
    };
    return reply.code(404).type(PROBLEM_MEDIA_TYPE).send(problem);
  });
}
