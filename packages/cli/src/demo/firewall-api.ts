import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';

/**
 * A stand-in for a firewall's admin API, for the demo: it knows nothing of Tether. It keeps rules
 * per edge in memory and answers who the gateway said the caller was (the `x-tether-*` headers)
 * and whether any credential reached it, so a demo or a test can see what the gateway forwards.
 *
 * - `GET /rules/:edge` lists an edge's rules;
 * - `POST /rules/:edge` adds one: `{ "action": "allow" | "deny", "source": "10.0.0.0/8", "port"?: 443 }`;
 * - `DELETE /rules/:edge/:id` removes one; `DELETE /rules/:edge` removes all of the edge's.
 */

export interface FirewallRule {
  id: string;
  action: 'allow' | 'deny';
  source: string;
  port: number | null;
  /** The principal the gateway named when the rule was added. */
  added_by: string | null;
}

const EDGE = { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' } as const;
const MAX_RULES_PER_EDGE = 1000;
const TETHER_HEADERS = ['principal', 'session', 'ticket', 'privilege'] as const;

function decoded(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** What the gateway told the upstream, decoded; and whether a token or proof got through. */
function seen(headers: IncomingHttpHeaders) {
  const tether: Record<string, string | null> = {};
  for (const name of TETHER_HEADERS) {
    const value = headers[`x-tether-${name}`];
    tether[name] = typeof value === 'string' ? decoded(value) : null;
  }
  return {
    tether,
    credentials: { authorization: headers.authorization !== undefined, dpop: headers.dpop !== undefined },
  };
}

/** The stand-in firewall admin API (see the module comment). */
export function createFirewallApi(options: { logger?: FastifyBaseLogger } = {}): FastifyInstance {
  const app = Fastify(options.logger ? { loggerInstance: options.logger } : { logger: false });
  const edges = new Map<string, FirewallRule[]>();
  const rulesOf = (edge: string) => edges.get(edge) ?? [];

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get<{ Params: { edge: string } }>(
    '/rules/:edge',
    { schema: { params: { type: 'object', properties: { edge: EDGE }, required: ['edge'] } } },
    async (request) => ({
      edge: request.params.edge,
      rules: rulesOf(request.params.edge),
      ...seen(request.headers),
    }),
  );

  app.post<{ Params: { edge: string }; Body: { action: 'allow' | 'deny'; source: string; port?: number } }>(
    '/rules/:edge',
    {
      schema: {
        params: { type: 'object', properties: { edge: EDGE }, required: ['edge'] },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['action', 'source'],
          properties: {
            action: { enum: ['allow', 'deny'] },
            source: { type: 'string', pattern: '^[0-9a-fA-F.:/]{1,64}$' },
            port: { type: 'integer', minimum: 1, maximum: 65535 },
          },
        },
      },
    },
    async (request, reply) => {
      const { edge } = request.params;
      const rules = rulesOf(edge);
      if (rules.length >= MAX_RULES_PER_EDGE)
        return reply.code(409).send({ error: 'too_many_rules', edge, ...seen(request.headers) });
      const who = seen(request.headers);
      const rule: FirewallRule = {
        id: randomUUID(),
        action: request.body.action,
        source: request.body.source,
        port: request.body.port ?? null,
        added_by: who.tether.principal ?? null,
      };
      edges.set(edge, [...rules, rule]);
      return reply.code(201).send({ edge, rule, ...who });
    },
  );

  app.delete<{ Params: { edge: string; id: string } }>(
    '/rules/:edge/:id',
    {
      schema: {
        params: {
          type: 'object',
          properties: { edge: EDGE, id: { type: 'string', pattern: '^[0-9a-f-]{36}$' } },
          required: ['edge', 'id'],
        },
      },
    },
    async (request, reply) => {
      const { edge, id } = request.params;
      const rules = rulesOf(edge);
      const removed = rules.find((r) => r.id === id);
      if (!removed)
        return reply.code(404).send({ error: 'no_such_rule', edge, id, ...seen(request.headers) });
      edges.set(
        edge,
        rules.filter((r) => r.id !== id),
      );
      return { edge, removed, ...seen(request.headers) };
    },
  );

  app.delete<{ Params: { edge: string } }>(
    '/rules/:edge',
    { schema: { params: { type: 'object', properties: { edge: EDGE }, required: ['edge'] } } },
    async (request) => {
      const removed = rulesOf(request.params.edge).length;
      edges.delete(request.params.edge);
      return { edge: request.params.edge, removed, ...seen(request.headers) };
    },
  );
  return app;
}
