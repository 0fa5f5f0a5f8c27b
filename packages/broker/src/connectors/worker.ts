import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { recordAudit } from '../audit/record.js';
import { sealSecret } from '../config/key-encryption.js';
import type { BrokerContext, ConnectorQueue } from '../core/context.js';
import { CONNECTOR_LIMITS, type ConnectorJob, nextAttemptAfter } from '../domain/connector.js';
import { isLive } from '../domain/session.js';
import { inTransaction } from '../store/database.js';
import {
  countFailingJobs,
  findConnectorSecret,
  leaseJob,
  listDueJobs,
  listSessionJobs,
  markJobDone,
  markJobFailed,
  nextDueAt,
  writeDestroyedCredential,
  writeMintedCredential,
} from '../store/repositories/connectors.js';
import { findSessionById } from '../store/repositories/sessions.js';
import { credentialSealBinding, destroyCredential, mintCredential } from './drivers.js';
import { PostgresRoleError } from './postgres-roles.js';
import { WebhookTargetRefused } from './webhook-target.js';

export type ConnectorWorkerContext = Pick<
  BrokerContext,
  'store' | 'clock' | 'kek' | 'config' | 'logger' | 'keys'
>;

/** Jobs taken per look at the queue. */
const PAGE = 50;
/** Longest sleep between looks when nothing is due sooner (the sweeper also wakes the worker). */
const MAX_SLEEP_MS = 60_000;
/** Tenants whose jobs run at once (each tenant's in order, one at a time). */
const TENANT_LANES = 4;
/**
 * Longest a mint or destroy may take before it counts as failed (and is retried with backoff):
 * well inside the lease, so that no other runner takes the job while this one still works it.
 */
const JOB_RUN_CAP_MS = CONNECTOR_LIMITS.leaseMs / 2;

/** A mint or destroy that ran past its cap. */
class JobTimedOut extends Error {
  override readonly name = 'JobTimedOut';
}

/** `work`, or a failure once it has run `ms` (its own time caps then end it in the background). */
async function capped<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const cut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new JobTimedOut(`${what} took longer than ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, cut]);
  } finally {
    clearTimeout(timer);
  }
}
/** A destroy waiting for its mint to finish looks again this soon (not counted as a failure). */
const WAIT_FOR_MINT_MS = 250;

/**
 * Why an attempt failed, as the tenant's audit trail says it: the step and PostgreSQL's error
 * code, or the target's refusal, else "unreachable". No more: the tenant's admin chose where the
 * connector points, and texts such as ECONNREFUSED, a timeout or a file name would make the
 * broker a scanner of the networks and files it can reach (as the outbound client's "unreachable"
 * rule says). The full error goes to the operator's log.
 */
function auditReasonOf(err: unknown): string {
  if (err instanceof PostgresRoleError)
    return err.step === 'connecting'
      ? 'unreachable'
      : `${err.step} failed${err.code ? ` (SQLSTATE ${err.code})` : ''}`;
  if (err instanceof WebhookTargetRefused) return err.message;
  if (err instanceof ConnectorJobInconsistent || err instanceof JobTimedOut) return err.message;
  return 'unreachable';
}

/** A job as its runner holds it: with the token of its lease. */
type HeldJob = ConnectorJob & { leaseToken: string };

/** A job whose session, connector and tenant do not belong together (a row edited in SQL). */
class ConnectorJobInconsistent extends Error {
  override readonly name = 'ConnectorJobInconsistent';
}

/**
 * Runs connector jobs in this process: minting a session's downstream credentials after the
 * activation commits, destroying them after the end commits. Each job is leased (one runner at
 * a time across replicas and restarts), run outside any transaction (it talks to another
 * system), and completed in a transaction with its audit record. A failed attempt is recorded
 * and retried with backoff, for ever: a credential that outlives its session is the failure
 * this exists to prevent. Jobs failing repeatedly raise `tether_connector_jobs_failing`.
 */
export class ConnectorWorker implements ConnectorQueue {
  readonly #ctx: ConnectorWorkerContext;
  readonly #log: Logger;
  #running: Promise<void> | undefined;
  #again = false;
  #stopping = false;
  #timer: NodeJS.Timeout | undefined;
  // Created unregistered: each app's registry adopts them (several brokers share a test process).
  readonly #failing = new Gauge({
    name: 'tether_connector_jobs_failing',
    help: `Connector jobs (credential mint or destroy) that have failed ${CONNECTOR_LIMITS.alertAfterAttempts} or more times and are still being retried`,
    registers: [],
  });
  readonly #failures = new Counter({
    name: 'tether_connector_job_failures_total',
    help: 'Failed attempts of connector jobs, by action',
    labelNames: ['action'] as const,
    registers: [],
  });

  constructor(ctx: ConnectorWorkerContext) {
    this.#ctx = ctx;
    this.#log = ctx.logger.child({ component: 'connectors' });
  }

  expose(registry: Registry): void {
    if (!registry.getSingleMetric('tether_connector_jobs_failing')) registry.registerMetric(this.#failing);
    if (!registry.getSingleMetric('tether_connector_job_failures_total'))
      registry.registerMetric(this.#failures);
  }

  wake(): void {
    if (this.#stopping) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#again = false;
    clearTimeout(this.#timer);
    this.#running = this.#runDue()
      .catch((err: unknown) => this.#log.error({ err }, 'connector run failed; will retry'))
      .finally(() => {
        this.#running = undefined;
        if (this.#again) this.wake();
        else void this.#sleepUntilDue();
      });
  }

  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#timer);
    await this.idle();
  }

  /** Wakes again when the next retry is due (the sweeper wakes the worker as well). */
  async #sleepUntilDue(): Promise<void> {
    if (this.#stopping) return;
    const due = await nextDueAt(this.#ctx.store).catch(() => undefined);
    if (due === undefined || this.#stopping || this.#running) return;
    const delay = Math.min(MAX_SLEEP_MS, Math.max(0, due - this.#ctx.clock.now()));
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.wake(), delay);
    this.#timer.unref();
  }

  async #runDue(): Promise<void> {
    for (;;) {
      if (this.#stopping) return;
      const due = await listDueJobs(this.#ctx.store, this.#ctx.clock.now(), PAGE);
      await this.#runFairly(due);
      this.#failing.set(await countFailingJobs(this.#ctx.store, CONNECTOR_LIMITS.alertAfterAttempts));
      if (due.length < PAGE) return;
    }
  }

  /**
   * Runs a page of due jobs one tenant lane at a time per slot, up to {@link TENANT_LANES} lanes at
   * once: a tenant whose downstream system hangs holds one lane (each job capped at
   * {@link JOB_RUN_CAP_MS}), and every other tenant's jobs go on beside it.
   */
  async #runFairly(due: readonly ConnectorJob[]): Promise<void> {
    const lanes = new Map<string, ConnectorJob[]>();
    for (const job of due) lanes.set(job.tenantId, [...(lanes.get(job.tenantId) ?? []), job]);
    const queue = [...lanes.values()];
    const worker = async () => {
      for (let lane = queue.shift(); lane; lane = queue.shift())
        for (const job of lane) {
          if (this.#stopping) return;
          await this.#runJob(job);
        }
    };
    await Promise.all(Array.from({ length: Math.min(TENANT_LANES, queue.length) }, worker));
  }

  async #runJob(listed: ConnectorJob): Promise<void> {
    const now = this.#ctx.clock.now();
    const token = randomUUID();
    const lease = { until: now + CONNECTOR_LIMITS.leaseMs, token };
    if (!(await leaseJob(this.#ctx.store, listed.id, now, lease))) return;
    const job: HeldJob = { ...listed, leaseToken: token };
    // A lease found expired: a runner took this job before and died (a crash, a kill -9).
    const resumed = listed.leaseUntil !== null;
    try {
      if (job.action === 'mint') await this.#mint(job, resumed);
      else await this.#destroy(job, resumed);
    } catch (err) {
      await this.#failed(job, err);
    }
  }

  async #mint(job: HeldJob, resumed: boolean): Promise<void> {
    const { store, clock } = this.#ctx;
    const session = await findSessionById(store, job.sessionId);
    const found = await findConnectorSecret(store, job.connectorId);
    assertBelongTogether(job, session, found?.connector);
    if (!session || !found) throw new Error('the session or connector of this job is gone');
    // Ended before its credential was minted: nothing to mint (its destroy job cleans up any
    // attempt a crash left half done).
    if (!isLive(session, clock.now())) {
      await inTransaction(store, (tx) => markJobDone(tx, job.id, clock.now(), job.leaseToken));
      return;
    }
    const minted = await capped(
      mintCredential(this.#ctx, found.connector, found.sealedSecret, session),
      JOB_RUN_CAP_MS,
      'minting',
    );
    const sealed = await sealSecret(
      this.#ctx.kek,
      minted.secret,
      credentialSealBinding(session.id, found.connector.id),
    );
    await inTransaction(store, async (tx) => {
      const at = clock.now();
      if (!(await markJobDone(tx, job.id, at, job.leaseToken))) return;
      await writeMintedCredential(
        tx,
        {
          sessionId: session.id,
          connectorId: found.connector.id,
          tenantId: session.tenantId,
          username: minted.username,
          fingerprint: minted.fingerprint,
          validUntil: minted.validUntil,
          mintedAt: at,
          collectedAt: null,
          destroyedAt: null,
          connectionsTerminated: null,
        },
        sealed,
      );
      await recordAudit(tx, session.tenantId, at, {
        actor: 'system',
        action: 'connector.credential_minted',
        target: session.id,
        outcome: 'success',
        requestId: session.requestId,
        ticket: session.ticket,
        principalId: session.principalId,
        details: {
          connector: found.connector.name,
          kind: found.connector.kind,
          username: minted.username,
          fingerprint: minted.fingerprint,
          valid_until: new Date(minted.validUntil).toISOString(),
          attempt: job.attempts + 1,
          ...(resumed ? { resumed_after_lease_expiry: true } : {}),
        },
      });
    });
  }

  async #destroy(job: HeldJob, resumed: boolean): Promise<void> {
    const { store, clock } = this.#ctx;
    // The mint must be settled first, or a mint still under way could create the role after
    // it was dropped.
    const mint = (await listSessionJobs(store, job.sessionId)).find(
      (j) => j.action === 'mint' && j.connectorId === job.connectorId,
    );
    if (mint?.state === 'pending') {
      await inTransaction(store, (tx) =>
        markJobFailed(tx, job.id, job.leaseToken, {
          attempts: job.attempts,
          retryAt: clock.now() + WAIT_FOR_MINT_MS,
          reason: 'waiting for the credential being minted',
        }),
      );
      this.wakeSoon(WAIT_FOR_MINT_MS);
      return;
    }
    const found = await findConnectorSecret(store, job.connectorId);
    const session = await findSessionById(store, job.sessionId);
    assertBelongTogether(job, session, found?.connector);
    if (!found || !session) throw new Error('the session or connector of this job is gone');
    const destroyed = await capped(
      destroyCredential(this.#ctx, found.connector, found.sealedSecret, session),
      JOB_RUN_CAP_MS,
      'destroying',
    );
    await inTransaction(store, async (tx) => {
      const at = clock.now();
      if (!(await markJobDone(tx, job.id, at, job.leaseToken))) return;
      await writeDestroyedCredential(tx, session.id, found.connector.id, at, destroyed.connectionsTerminated);
      await recordAudit(tx, session.tenantId, at, {
        actor: 'system',
        action: 'connector.credential_destroyed',
        target: session.id,
        outcome: 'success',
        requestId: session.requestId,
        ticket: session.ticket,
        principalId: session.principalId,
        details: {
          connector: found.connector.name,
          kind: found.connector.kind,
          existed: destroyed.existed,
          connections_terminated: destroyed.connectionsTerminated,
          attempt: job.attempts + 1,
          ...(resumed ? { resumed_after_lease_expiry: true } : {}),
        },
      });
    });
  }

  /** Records a failed attempt (audited), schedules the next with backoff; never drops the job. */
  async #failed(job: HeldJob, err: unknown): Promise<void> {
    const { store, clock } = this.#ctx;
    const attempts = job.attempts + 1;
    const reason = auditReasonOf(err);
    const now = clock.now();
    const retryAt = nextAttemptAfter(now, attempts);
    this.#failures.inc({ action: job.action });
    this.#log.warn(
      { job: job.id, action: job.action, attempts, reason, err },
      'connector job failed; will retry',
    );
    await inTransaction(store, async (tx) => {
      // Another runner holds the job now (this one stalled past its lease): its record stands.
      if (!(await markJobFailed(tx, job.id, job.leaseToken, { attempts, retryAt, reason }))) return;
      await recordAudit(tx, job.tenantId, now, {
        actor: 'system',
        action:
          attempts >= CONNECTOR_LIMITS.alertAfterAttempts ? 'connector.job_failing' : 'connector.job_failed',
        target: job.sessionId,
        outcome: 'failure',
        details: {
          job: job.id,
          job_action: job.action,
          attempts,
          reason,
          retry_at: new Date(retryAt).toISOString(),
        },
      });
    }).catch((writeErr: unknown) =>
      // The store itself is failing: the lease runs out and the job is taken again.
      this.#log.error({ err: writeErr, job: job.id }, 'could not record a connector job failure'),
    );
  }

  /** Looks again after `ms` (a destroy waiting for its mint). */
  wakeSoon(ms: number): void {
    if (this.#stopping) return;
    const timer = setTimeout(() => this.wake(), ms);
    timer.unref();
  }
}

/**
 * The job, its session and its connector are one tenant's: a job row pointed in SQL at another
 * tenant's connector (to mint in its database for one's own session) is refused before any call.
 */
function assertBelongTogether(
  job: ConnectorJob,
  session: { tenantId: string } | undefined,
  connector: { tenantId: string } | undefined,
): void {
  if (session && session.tenantId !== job.tenantId)
    throw new ConnectorJobInconsistent('the job and its session belong to different tenants');
  if (connector && connector.tenantId !== job.tenantId)
    throw new ConnectorJobInconsistent('the job and its connector belong to different tenants');
}
