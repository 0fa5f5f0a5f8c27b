import { describe, expect, it } from 'vitest';
import { gatewayMetrics } from './metrics.js';

const state = () => ({ position: 7, fresh: true, freshAt: 1_000, connected: true, decisions: undefined });

describe('gateway metrics', () => {
  it('counts decisions by code and upstream answers by status class, from cached label children', async () => {
    const metrics = gatewayMetrics(state as never, () => 2_000);
    metrics.decided('ok');
    metrics.decided('ok');
    metrics.decided('invalid_token');
    metrics.upstreamAnswered(200, 0.002);
    metrics.upstreamAnswered(204, 0.003);
    metrics.upstreamAnswered(502, 0.004);
    metrics.upstreamFailed();
    const text = await metrics.registry.metrics();
    expect(text).toContain('tether_gateway_decisions_total{code="ok"} 2');
    expect(text).toContain('tether_gateway_decisions_total{code="invalid_token"} 1');
    expect(text).toContain('tether_gateway_upstream_duration_seconds_count{status="2xx"} 2');
    expect(text).toContain('tether_gateway_upstream_duration_seconds_count{status="5xx"} 1');
    expect(text).toContain('tether_gateway_upstream_errors_total 1');
    expect(text).toContain('tether_gateway_mirror_position 7');
  });
});
