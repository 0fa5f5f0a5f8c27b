// One fault trial: workers run session lifecycles (request → auto-approval → activation → end)
// against a real broker process while a chaos loop injects a fault; then the ledger of what the
// broker acknowledged is checked against the store (nothing acknowledged lost, every end has its
// revocation event, no session alive past its hard expiry) and the audit chain is verified.
import { setTimeout as sleep } from 'node:timers/promises';
import { BenchTenant } from '../bench/lib/broker.mjs';
import { BoundSession, BrokerClient } from '../packages/client/dist/index.js';
import { FaultBroker, pgAdmin } from './lib/fault-broker.mjs';
import { audit, Ledger } from './lib/ledger.mjs';

/** Session length of the trials: short, so that hard expiries fall inside a trial. */
const SESSION_SECONDS = 60;

function kindOf(err) {
  if (typeof err?.status === 'number') return String(err.status);
  const code = err?.cause?.code ?? err?.code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' ? 'refused' : 'other';
}

/** Ends a session, retrying until the broker answers: 2xx is acknowledged; 409 means it ended without our hearing. */
async function endSession(client, id, ledger, deadline) {
  while (Date.now() < deadline) {
    try {
      await client.call('POST', `/v1/sessions/${id}/end`, {});
      ledger.ended.add(id);
      return;
    } catch (err) {
      if (err?.status === 409) return;
      ledger.failed(kindOf(err));
      await sleep(100);
    }
  }
}

async function worker(pipeline, ledger, state, deadline) {
  while (state.completed < state.target && Date.now() < deadline) {
    let session;
    try {
      const request = await pipeline.call('POST', '/v1/requests', {
        privilege: 'bench',
        justification: 'fault trial',
        duration: SESSION_SECONDS,
      });
      session = await BoundSession.activate(pipeline, request.id);
      ledger.activated.set(session.info.id, session.info.hardExpiresAt);
    } catch (err) {
      // A lifecycle cut short by the fault: abandoned (its session, if any, dies at hard expiry).
      ledger.failed(kindOf(err));
      await sleep(100);
      continue;
    }
    await endSession(pipeline, session.info.id, ledger, deadline);
    state.completed++;
  }
}

/**
 * @param {{ dialect: 'sqlite'|'postgres', lifecycles: number, workers?: number,
 *   chaos: (broker: FaultBroker, stop: () => boolean) => Promise<{ faults: number, notes?: string }>,
 *   name: string, timeLimitMs?: number, brokerOptions?: object,
 *   setup?: (tenant: BenchTenant, broker: FaultBroker) => Promise<void>,
 *   afterwards?: (broker: FaultBroker, ledger: Ledger, admin: BrokerClient) => Promise<object> }} options
 *   `setup` runs once the tenant's privilege exists; `afterwards` once the lifecycles are done
 *   and the broker has swept, adding its fields to the row.
 */
export async function lifecycleTrial({
  dialect,
  lifecycles,
  workers = 4,
  chaos,
  name,
  timeLimitMs = 600_000,
  brokerOptions = {},
  setup,
  afterwards,
}) {
  const broker = await FaultBroker.create({ dialect, ...brokerOptions });
  const started = Date.now();
  try {
    const tenant = new BenchTenant({
      adminIdentity: broker.adminIdentity,
      publicUrl: broker.publicUrl,
      tenant: broker.tenant,
    });
    await tenant.grant('https://faults.example');
    await setup?.(tenant, broker);
    const ledger = new Ledger();
    const state = { completed: 0, target: lifecycles };
    const deadline = started + timeLimitMs;
    let stopped = false;
    const chaosRun = chaos(broker, () => stopped || state.completed >= lifecycles);
    const pipelines = [tenant.pipeline];
    for (let i = 1; i < workers; i++)
      pipelines.push(new BrokerClient({ identity: tenant.pipeline.identity }));
    await Promise.all(pipelines.map((p) => worker(p, ledger, state, deadline)));
    stopped = true;
    const { faults, notes, deaths = 0 } = await chaosRun;
    // Let the broker sweep what expired while it was down, then compare.
    await sleep(1500);
    const losses = await audit(broker, ledger);
    const admin = new BrokerClient({ identity: broker.adminIdentity });
    const extra = (await afterwards?.(broker, ledger, admin)) ?? {};
    const verify = await admin.call('GET', '/v1/audit/verify');
    return {
      name,
      store: dialect,
      lifecycles: state.completed,
      faults,
      activations: ledger.activated.size,
      ends: ledger.ended.size,
      failedCalls: Object.values(ledger.failures).reduce((a, b) => a + b, 0),
      serverErrors: ledger.serverErrors,
      ...losses,
      brokerDeaths: deaths,
      auditVerified: verify.ok === true,
      seconds: Math.round((Date.now() - started) / 100) / 10,
      ...(notes ? { notes } : {}),
      ...extra,
    };
  } finally {
    await broker.destroy();
  }
}

/** Chaos: `kill -9` the broker at random moments, start it again after a random pause. */
export function crashes({
  everyMs = [200, 1200],
  downMs = [0, 200],
  maxFaults = Number.POSITIVE_INFINITY,
} = {}) {
  const between = ([lo, hi]) => lo + Math.random() * (hi - lo);
  return async (broker, done) => {
    let faults = 0;
    while (!done() && faults < maxFaults) {
      await sleep(between(everyMs));
      if (done()) break;
      await broker.crash();
      faults++;
      await sleep(between(downMs));
      await broker.restart();
    }
    return { faults };
  };
}

/**
 * Chaos (PostgreSQL): terminate the broker's database connections (`pg_terminate_backend`, as a
 * failover or an idle-in-transaction timeout does), over and over. The broker must stay alive.
 */
export function terminatedConnections({ everyMs = [100, 500] } = {}) {
  const between = ([lo, hi]) => lo + Math.random() * (hi - lo);
  return async (broker, done) => {
    let faults = 0;
    let deaths = 0;
    while (!done()) {
      await sleep(between(everyMs));
      const killed = await pgAdmin(
        'select pg_terminate_backend(pid) as gone from pg_stat_activity where application_name = $1',
        [`tether:${broker.pgSchema}`.slice(0, 63)],
      );
      faults += killed.length;
      // The process must survive every one: a death is restarted (to finish the trial) and reported.
      if (!broker.alive) {
        deaths++;
        await broker.restart();
      }
    }
    return { faults, notes: deaths > 0 ? `broker died ${deaths} time(s)` : 'broker stayed up', deaths };
  };
}

/**
 * Chaos (PostgreSQL through a TCP proxy): the database hangs (every connection stops carrying
 * bytes) for a while, or its connections are reset; then it comes back.
 */
export function hungDatabase(proxy, { everyMs = [300, 900], hangMs = [200, 1500] } = {}) {
  const between = ([lo, hi]) => lo + Math.random() * (hi - lo);
  return async (broker, done) => {
    let faults = 0;
    let deaths = 0;
    while (!done()) {
      await sleep(between(everyMs));
      faults++;
      if (Math.random() < 0.5) {
        proxy.pause();
        await sleep(between(hangMs));
        proxy.resume();
      } else proxy.cut();
      if (!broker.alive) {
        deaths++;
        await broker.restart();
      }
    }
    return { faults, notes: deaths > 0 ? `broker died ${deaths} time(s)` : 'broker stayed up', deaths };
  };
}
