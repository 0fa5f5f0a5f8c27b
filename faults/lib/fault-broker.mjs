// A broker process that the fault suite can crash (`kill -9`) and start again on the same
// store, port and key-encryption key, as a supervisor would after a crash.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { BenchTenant, PG_URL } from '../../bench/lib/broker.mjs';
import { Child, freePort } from '../../bench/lib/processes.mjs';

const BROKER_SCRIPT = new URL('../../bench/lib/broker-process.mjs', import.meta.url);

export async function pgAdmin(sql, params = []) {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The test database's URL with another port on loopback: the same server, through a proxy. */
function proxiedUrl(port) {
  const url = new URL(PG_URL);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return url.toString();
}

/**
 * The broker's bootstrapped tenant as a {@link BenchTenant} with the benchmark privilege for
 * `audience`, and a PEP principal (`pepName`, role pep) set to enforce that audience.
 */
export async function tenantWithPep(broker, audience, pepName) {
  const tenant = new BenchTenant({
    adminIdentity: broker.adminIdentity,
    publicUrl: broker.publicUrl,
    tenant: broker.tenant,
  });
  await tenant.grant(audience);
  const pep = await tenant.principal(pepName, 'service', ['pep']);
  await tenant.admin.call('PUT', `/v1/peps/${pep.principal}/audiences`, { audiences: [audience] });
  return { tenant, pep };
}

/** CPU time a process has used so far, in seconds (user + system, from /proc on Linux). */
export function processCpuSeconds(pid) {
  if (pid === undefined) return Number.NaN;
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

export class FaultBroker {
  /** @type {Child | undefined} */
  #child;
  #options;
  crashes = 0;

  constructor(options) {
    this.#options = options;
  }

  /** A fresh store (SQLite file or PostgreSQL schema) and a broker on it, with a bootstrapped tenant. */
  static async create({
    dialect,
    sweepIntervalMs = 500,
    viaProxy,
    statementTimeoutMs,
    connectTimeoutMs,
    heartbeatIntervalMs,
    outboundAllowHosts,
    // A directory of the caller's for the store (e.g. on a small filesystem it can fill), which
    // it keeps and removes itself; by default a fresh temporary one, removed by `destroy`.
    dataDir: givenDataDir,
  }) {
    const dataDir = givenDataDir ?? mkdtempSync(join(tmpdir(), 'tether-faults-'));
    const pgSchema =
      dialect === 'postgres'
        ? `tether_t_${Date.now().toString(36)}_fault${randomBytes(4).toString('hex')}`
        : undefined;
    if (pgSchema) await pgAdmin(`create schema ${pgSchema}`);
    const port = await freePort();
    const broker = new FaultBroker({
      dialect,
      dataDir,
      ownsDataDir: givenDataDir === undefined,
      pgSchema,
      location: pgSchema ? (viaProxy ? proxiedUrl(viaProxy.port) : PG_URL) : join(dataDir, 'tether.db'),
      ...(statementTimeoutMs ? { statementTimeoutMs } : {}),
      ...(connectTimeoutMs ? { connectTimeoutMs } : {}),
      ...(heartbeatIntervalMs ? { heartbeatIntervalMs } : {}),
      ...(outboundAllowHosts ? { outboundAllowHosts } : {}),
      port,
      publicUrl: `http://127.0.0.1:${port}`,
      kek: randomBytes(32).toString('base64url'),
      sweepIntervalMs,
    });
    const started = await broker.#start(true);
    broker.tenant = started.tenant;
    broker.adminIdentity = {
      broker: broker.publicUrl,
      tenant: started.tenant,
      principal: started.admin.principal,
      key: started.admin.key,
    };
    return broker;
  }

  /** Whether the broker process is running (it has not died on its own or been killed). */
  get alive() {
    return this.#child !== undefined && !this.#child.exited;
  }

  /** The broker process's resident memory in MiB, read from /proc (Linux). */
  rssMiB() {
    const pid = this.#child?.pid;
    if (pid === undefined) return Number.NaN;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kib = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
      return kib / 1024;
    } catch {
      return Number.NaN;
    }
  }

  /** CPU time the broker process has used so far, in seconds (user + system, from /proc). */
  cpuSeconds() {
    return processCpuSeconds(this.#child?.pid);
  }

  get publicUrl() {
    return this.#options.publicUrl;
  }

  get dialect() {
    return this.#options.dialect;
  }

  get pgSchema() {
    return this.#options.pgSchema;
  }

  get location() {
    return this.#options.location;
  }

  async #start(bootstrap) {
    const child = new Child(BROKER_SCRIPT, `broker (${this.#options.dialect})`);
    this.#child = child;
    const { dialect: _dialect, ownsDataDir: _owns, ...options } = this.#options;
    child.send({ type: 'start', ...options, bootstrap });
    return child.expect('started', { timeoutMs: 120_000 });
  }

  /** `kill -9`: no shutdown of any kind, whatever the broker was doing. */
  async crash() {
    await this.#child?.kill('SIGKILL');
    this.crashes++;
  }

  /** Starts the broker again on the same store, port and KEK. */
  async restart() {
    await this.#start(false);
  }

  async stop() {
    await this.#child?.stop();
  }

  async destroy() {
    await this.stop().catch(() => undefined);
    if (this.#options.pgSchema) await pgAdmin(`drop schema if exists ${this.#options.pgSchema} cascade`);
    if (this.#options.ownsDataDir) rmSync(this.#options.dataDir, { recursive: true, force: true });
  }
}
