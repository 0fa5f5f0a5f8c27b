// P6: median latency of a request through the gateway (`tether gateway`: route match, full PEP
// decision with a fresh DPoP proof, streaming proxy) against the same request sent straight to
// the upstream service. Target: gateway p50 ≤ 1.5 × direct p50.
import { createServer } from 'node:http';
import { resolveGatewayConfig, validateGatewayConfig } from '../packages/cli/dist/gateway/config.js';
import { createGateway } from '../packages/cli/dist/gateway/server.js';
import { BenchTenant, REQUIREMENT, startBrokers } from './lib/broker.mjs';
import { freePort } from './lib/processes.mjs';
import { mintProofs } from './lib/proofs.mjs';
import { ms, percentile, times } from './lib/stats.mjs';

export const title = 'Gateway latency vs the upstream called directly (median)';

const REQUESTS = Number(process.env.TETHER_BENCH_P6_REQUESTS ?? 2000);
const TARGET = 1.5;
const PATH = '/r1/status';

/** The stand-in upstream: a small JSON answer, like a typical admin API read. */
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
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

/** Times `count` sequential GETs (one keep-alive connection pool, like any HTTP client). */
async function timed(url, count, headersOf) {
  const latencies = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const response = await fetch(url, { headers: headersOf(i) });
    await response.arrayBuffer();
    latencies.push(performance.now() - t0);
    if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
  }
  return latencies;
}

export async function run({ log }) {
  const brokers = await startBrokers();
  const upstream = await startUpstream();
  let gateway;
  try {
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    const tenant = new BenchTenant(brokers);
    const identity = await tenant.principal('p6-gateway', 'service', ['pep']);
    await tenant.grant(publicUrl);
    const session = await tenant.session();
    const settings = validateGatewayConfig(
      {
        listen: { host: '127.0.0.1', port },
        public_url: publicUrl,
        upstream: upstream.url,
        broker: brokers.urls[0],
        issuer: brokers.publicUrl,
        routes: [
          { method: 'GET', path: '/r1/status', action: REQUIREMENT.action, resource: REQUIREMENT.resource },
        ],
      },
      process.cwd(),
      'p6 gateway config',
    );
    gateway = await createGateway(resolveGatewayConfig(settings, identity), { decisions: false });
    await gateway.listen();
    const deadline = Date.now() + 20_000;
    while (!gateway.enforcer.state().fresh) {
      if (Date.now() > deadline) throw new Error('the gateway never got fresh');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const warm = Math.round(REQUESTS / 10);
    const proofs = await mintProofs(session, {
      method: 'GET',
      url: `${publicUrl}${PATH}`,
      accessToken: session.token,
      count: 2 * (warm + REQUESTS),
      // The gateway requires its own DPoP nonce (RFC 9449 §9); a client learns it once per window.
      nonce: gateway.enforcer.dpopNonce(),
    });
    const viaGateway = (offset) => (i) => ({
      authorization: `DPoP ${session.token}`,
      dpop: proofs[offset + i],
    });
    // Interleave warm-ups, then measure each path in turn, twice, so drift hits both alike.
    await timed(`${upstream.url}${PATH}`, warm, () => ({}));
    await timed(`${publicUrl}${PATH}`, warm, viaGateway(0));
    const half = Math.floor(REQUESTS / 2);
    const direct = [
      ...(await timed(`${upstream.url}${PATH}`, half, () => ({}))),
      ...(await timed(`${upstream.url}${PATH}`, REQUESTS - half, () => ({}))),
    ];
    const through = [
      ...(await timed(`${publicUrl}${PATH}`, half, viaGateway(warm))),
      ...(await timed(`${publicUrl}${PATH}`, REQUESTS - half, viaGateway(warm + half))),
    ];
    log(`direct p50 ${ms(percentile(direct, 50))}, gateway p50 ${ms(percentile(through, 50))}`);
    const ratio = percentile(through, 50) / percentile(direct, 50);
    return {
      rows: [
        [
          'direct to the upstream: p50 / p99',
          `${ms(percentile(direct, 50))} / ${ms(percentile(direct, 99))}`,
        ],
        ['through the gateway: p50 / p99', `${ms(percentile(through, 50))} / ${ms(percentile(through, 99))}`],
        ['requests per path', String(REQUESTS)],
      ],
      verdicts: [
        {
          figure: 'gateway p50 ÷ direct p50',
          value: times(ratio),
          target: `≤ ${TARGET}×`,
          met: ratio <= TARGET,
        },
      ],
      notes: [
        'Sequential GETs from one client (fetch, keep-alive), upstream, gateway and client in one process on loopback; each gateway request carries a DPoP proof never sent before, with the current DPoP nonce of the gateway (required by default), the same access token (verified-token cache hit), decision reporting off.',
        'The gateway adds one more HTTP hop on loopback, the route match, the PEP decision (one Ed25519 verification on WebCrypto) and header rewriting; the upstream answers a small JSON body.',
      ],
    };
  } finally {
    await gateway?.close();
    await new Promise((resolve) => upstream.server.close(resolve));
    await brokers.stop();
  }
}
