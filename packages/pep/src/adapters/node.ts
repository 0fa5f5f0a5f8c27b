import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Decision, Enforcer } from '../enforcer.js';
import { denialResponse } from './denial.js';

/** What a request needs: its action and resource, or `undefined` to leave the request unprotected. */
export type RequirementOf = (req: IncomingMessage) => { action: string; resource: string } | undefined;

/** The decision of an allowed request, for handlers behind the middleware. */
export const TETHER_DECISION = Symbol.for('tether.decision');

/** The allowed decision the middleware attached to `req`, if any. */
export function decisionOf(req: IncomingMessage): Decision | undefined {
  return (req as IncomingMessage & { [TETHER_DECISION]?: Decision })[TETHER_DECISION];
}

/** Answers a denied request (problem+json, `WWW-Authenticate` / `Retry-After`). */
export function sendDenial(res: ServerResponse, decision: Decision): void {
  const { status, headers, body } = denialResponse(decision);
  res.writeHead(status, headers).end(body);
}

/**
 * Node `http` / Express / Connect middleware: decides each request with the enforcer and
 * either answers the denial itself or calls `next()` with the decision attached to the request
 * ({@link decisionOf}). A request for which `requirement` answers `undefined` passes unchecked;
 * say so explicitly for public routes, and deny by default for the rest.
 *
 * @example
 * ```ts
 * const guard = tetherMiddleware(pep, (req) => ({ action: 'firewall:rules.read', resource: 'firewall/edge-1' }));
 * http.createServer((req, res) => guard(req, res, () => handle(req, res)));
 * ```
 */
export function tetherMiddleware(
  enforcer: Enforcer,
  requirement: RequirementOf,
): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
  return (req, res, next) => {
    const need = requirement(req);
    if (need === undefined) {
      next();
      return;
    }
    enforcer
      .authorize({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, ...need })
      .then((decision) => {
        if (!decision.allow) {
          sendDenial(res, decision);
          return;
        }
        (req as IncomingMessage & { [TETHER_DECISION]?: Decision })[TETHER_DECISION] = decision;
        // A fresh nonce when the window rolled (RFC 9449 §9), set before the handler replies.
        if (decision.dpopNonce !== undefined) res.setHeader('dpop-nonce', decision.dpopNonce);
        next();
      }, next);
  };
}
