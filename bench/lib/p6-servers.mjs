// The processes of P6, one per forked child (the load generator runs in the runner's process):
// - `upstream`: the service behind every proxy, a node:http server answering a small JSON body;
// - `gateway`: `tether gateway` as shipped (its logger and decision reporting) or, with `quiet`,
//   with logging and decision reporting off;
// - `reply-from`: a bare Fastify + @fastify/reply-from reverse proxy (what a Node user would write).
import { openSync } from 'node:fs';
import { createServer } from 'node:http';
import replyFrom from '@fastify/reply-from';
import Fastify from 'fastify';
import { resolveGatewayConfig, validateGatewayConfig } from '../../packages/cli/dist/gateway/config.js';
import { gatewayLogger } from '../../packages/cli/dist/gateway/run.js';
import { createGateway } from '../../packages/cli/dist/gateway/server.js';
import { freePort, serveParent } from './processes.mjs';

let stop = async () => undefined;

async function startUpstream() {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ ok: true, path: req.url, principal: req.headers['x-tether-principal'] ?? null }),
      );
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  stop = () => new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${server.address().port}`;
}

async function startReplyFrom(upstream) {
  const app = Fastify({ logger: false });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
  await app.register(replyFrom, { base: upstream, undici: { connections: 128 } });
  app.all('/*', (request, reply) => reply.from(request.raw.url));
  stop = () => app.close();
  return app.listen({ host: '127.0.0.1', port: 0 });
}

/** The gateway as `tether gateway` runs it; its log goes to `logFile` (as to a file or journald). */
async function startGateway({ config, identity, quiet, logFile }) {
  const port = await freePort();
  const settings = validateGatewayConfig(
    { ...config, listen: { host: '127.0.0.1', port }, public_url: `http://127.0.0.1:${port}` },
    process.cwd(),
    'p6 gateway config',
  );
  const options = quiet ? { decisions: false } : { logger: gatewayLogger('info', openSync(logFile, 'a')) };
  const gateway = await createGateway(resolveGatewayConfig(settings, identity), options);
  await gateway.listen();
  stop = () => gateway.close();
  const deadline = Date.now() + 20_000;
  while (!gateway.enforcer.state().fresh) {
    if (Date.now() > deadline) throw new Error('the gateway never got fresh');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { origin: `http://127.0.0.1:${port}`, nonce: () => gateway.enforcer.dpopNonce(), gateway };
}

let gatewayHandle;
serveParent(
  {
    async start(message) {
      if (message.mode === 'upstream') return { type: 'started', origin: await startUpstream() };
      if (message.mode === 'reply-from')
        return { type: 'started', origin: await startReplyFrom(message.upstream) };
      gatewayHandle = await startGateway(message);
      return { type: 'started', origin: gatewayHandle.origin };
    },
    cpu: () => {
      const { user, system } = process.cpuUsage();
      return { type: 'cpu', micros: user + system };
    },
    nonce: () => ({ type: 'nonce', nonce: gatewayHandle.nonce() }),
    stats: () => ({ type: 'stats', decisions: gatewayHandle.gateway.enforcer.state().decisions ?? null }),
  },
  () => stop(),
);
