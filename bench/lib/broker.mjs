// The runner's side of a benchmark broker: one process on SQLite, or replicas on one PostgreSQL
// schema; and the tenant a benchmark needs, set up through the broker's own API.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import pg from 'pg';
import {
  BoundSession,
  BrokerClient,
  exportSessionKey,
  generateSessionKey,
} from '../../packages/client/dist/index.js';
import { createEnforcer } from '../../packages/pep/dist/index.js';
import { Child, freePort } from './processes.mjs';

const BROKER_SCRIPT = new URL('./broker-process.mjs', import.meta.url);

/** Where PostgreSQL is for the replica benchmarks (the test suite's database by default). */
export const PG_URL =
  process.env.TETHER_BENCH_DATABASE_URL ??
  process.env.TETHER_TEST_DATABASE_URL ??
  'postgres://postgres@127.0.0.1:5432/test';

async function pgAdmin(sql) {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Whether PostgreSQL answers; the reason when it does not. */
export async function postgresProblem() {
  try {
    await pgAdmin('select 1');
    return undefined;
  } catch (err) {
    return `PostgreSQL at ${PG_URL.replace(/\/\/[^@]*@/, '//')} is not reachable (${err.message})`;
  }
}

/**
 * Starts `replicas` broker processes on one store — a fresh SQLite file, or with `postgres` a
 * fresh schema of PG_URL (named like the test suite's, so that its setup drops one an
 * interrupted run left behind) — and bootstraps a tenant on the first. Every replica has the
 * same public URL (the first one's address, as if it were the load balancer's) and key-encryption key.
 */
export async function startBrokers({
  replicas = 1,
  postgres = false,
  heartbeatIntervalMs,
  outboundAllowHosts,
} = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'tether-bench-'));
  const kek = randomBytes(32).toString('base64url');
  const pgSchema = postgres
    ? `tether_t_${Date.now().toString(36)}_bench${randomBytes(4).toString('hex')}`
    : undefined;
  if (pgSchema) await pgAdmin(`create schema ${pgSchema}`);
  const location = pgSchema ? PG_URL : join(dataDir, 'tether.db');
  const children = [];
  const cleanup = async () => {
    await Promise.all(children.map((c) => c.stop()));
    if (pgSchema) await pgAdmin(`drop schema if exists ${pgSchema} cascade`);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const ports = [];
    for (let i = 0; i < replicas; i++) ports.push(await freePort());
    const publicUrl = `http://127.0.0.1:${ports[0]}`;
    const urls = [];
    let boot;
    // One after the other: the first migrates the store and bootstraps the tenant.
    for (let i = 0; i < replicas; i++) {
      const child = new Child(BROKER_SCRIPT, `broker ${String.fromCharCode(65 + i)}`);
      children.push(child);
      child.send({
        type: 'start',
        location,
        pgSchema,
        port: ports[i],
        publicUrl,
        dataDir,
        kek,
        heartbeatIntervalMs,
        outboundAllowHosts,
        bootstrap: i === 0,
      });
      // Migrations on PostgreSQL take a database-wide lock: parallel test suites can hold it a while.
      const started = await child.expect('started', { timeoutMs: 180_000 });
      urls.push(started.url);
      boot ??= started;
    }
    return {
      urls,
      publicUrl,
      tenant: boot.tenant,
      adminIdentity: {
        broker: publicUrl,
        tenant: boot.tenant,
        principal: boot.admin.principal,
        key: boot.admin.key,
      },
      dialect: pgSchema ? 'postgres' : 'sqlite',
      stop: cleanup,
    };
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}

/** A fresh Ed25519 identity key: the private JWK (with `kid` and `alg`) and the public one. */
export async function newIdentityKey() {
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'EdDSA' }, publicJwk };
}

/** The policies of the benchmark tenant: its pipeline gets the benchmark privilege at once. */
const POLICIES = {
  'pipeline-request': `permit(principal, action == Tether::Action::"request", resource) when { principal.kind == "pipeline" };`,
  'pipeline-auto': `permit(principal, action == Tether::Action::"auto_approve", resource) when { principal.kind == "pipeline" };`,
};

/** What the protected servers of the benchmarks require: one action on one resource. */
export const REQUIREMENT = Object.freeze({ action: 'bench:read', resource: 'bench/r1' });

/**
 * The tenant of a benchmark, driven over the API as an administrator would: principals, a
 * privilege honoured by `audience`, and a pipeline principal that gets sessions of it.
 */
export class BenchTenant {
  constructor(brokers) {
    this.brokers = brokers;
    this.admin = new BrokerClient({ identity: brokers.adminIdentity });
  }

  /** Creates a principal with a fresh key; answers its identity file. */
  async principal(name, kind = 'service', roles = []) {
    const { privateJwk, publicJwk } = await newIdentityKey();
    const created = await this.admin.call('POST', '/v1/principals', { name, kind, roles, keys: [publicJwk] });
    return {
      broker: this.brokers.publicUrl,
      tenant: this.brokers.tenant,
      principal: created.id,
      key: privateJwk,
    };
  }

  /** The privilege (`bench`) for `audience`, the policies, and the pipeline that requests it. */
  async grant(audience) {
    await this.admin.call('POST', '/v1/privileges', {
      name: 'bench',
      actions: [REQUIREMENT.action],
      resources: [REQUIREMENT.resource],
      audiences: [audience],
      max_duration: 3600,
      ticket: { required: false },
    });
    await this.admin.call('PUT', '/v1/policies', { policies: POLICIES });
    this.pipeline = new BrokerClient({ identity: await this.principal('bench-pipeline', 'pipeline') });
  }

  /**
   * A live session of the privilege: requested, auto-approved, activated with an extractable
   * key (the benchmarks sign proofs with it outside the SDK too). Answers the SDK's session,
   * its private JWK and its access token.
   */
  async session() {
    const request = await this.pipeline.call('POST', '/v1/requests', {
      privilege: 'bench',
      justification: 'benchmark',
      duration: 900,
    });
    const key = await generateSessionKey({ extractable: true });
    const session = await BoundSession.activate(this.pipeline, request.id, key);
    return {
      id: session.info.id,
      session,
      key,
      privateJwk: await exportSessionKey(key),
      token: session.tokens.accessToken,
    };
  }

  /** Ends a session over HTTP as its holder; resolves when the broker's answer is in. */
  async end(sessionId) {
    await this.pipeline.call('POST', `/v1/sessions/${sessionId}/end`, { reason: 'revoked' });
  }
}

/**
 * A PEP in this process, following the first broker for `audience` as `pep` (a principal of
 * {@link BenchTenant#principal}), decision reporting off; started, and answered once fresh.
 * `extra`: further createEnforcer options (e.g. `dpopNonce`).
 */
export async function startBenchEnforcer(brokers, pep, audience, extra = {}) {
  const enforcer = createEnforcer({
    broker: brokers.urls[0],
    issuer: brokers.publicUrl,
    audience,
    tenant: brokers.tenant,
    publicBaseUrl: audience,
    identity: { principal: pep.principal, key: pep.key },
    decisions: false,
    ...extra,
  });
  enforcer.start();
  const deadline = Date.now() + 20_000;
  while (!enforcer.state().fresh) {
    if (Date.now() > deadline) {
      await enforcer.close();
      throw new Error(`the enforcer never got fresh: ${enforcer.state().lastError}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return enforcer;
}
