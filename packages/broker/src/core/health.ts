import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';

/**
 * The faults a broker survives but must not hide: a store connection lost outside a query, an
 * after-commit effect that failed, a failed readiness probe, a sweeper step that threw. Each
 * is logged with its cause and counted, so an operator sees them in the log and in `/metrics`
 * (`tether_faults_total{kind,step}`) instead of learning of them from a stuck session.
 */
export class BrokerHealth {
  readonly #logger: Logger;
  // Created unregistered: each app's registry adopts it (several brokers share a test process).
  readonly #faults = new Counter({
    name: 'tether_faults_total',
    help: 'Faults the broker survived, by kind (store_connection, effect, readiness, sweeper) and step',
    labelNames: ['kind', 'step'] as const,
    registers: [],
  });

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** A pooled or listening store connection failed; the query under way (if any) fails on its own. */
  storeConnectionError(err: unknown): void {
    this.#logger.error({ err }, 'store connection error; the connection is discarded');
    this.#faults.inc({ kind: 'store_connection', step: 'connection' });
  }

  /** An effect run after commit (revocation wake-up, push, connector call) threw. The commit stands. */
  effectFailed(err: unknown): void {
    this.#logger.error({ err }, 'an after-commit effect failed; the committed change stands');
    this.#faults.inc({ kind: 'effect', step: 'after_commit' });
  }

  /** `/readyz` found the store not ready. */
  readinessFailed(reason: string, cause: unknown): void {
    this.#logger.error({ err: cause, reason }, 'readiness probe failed');
    this.#faults.inc({ kind: 'readiness', step: reason });
  }

  /** One step of the sweeper threw; the other steps still ran. */
  sweeperStepFailed(step: string, err: unknown): void {
    this.#logger.error({ err, step }, 'sweeper step failed; will retry at the next sweep');
    this.#faults.inc({ kind: 'sweeper', step });
  }

  /** Adds the fault counter to an app's metrics registry. */
  expose(registry: Registry): void {
    if (!registry.getSingleMetric('tether_faults_total')) registry.registerMetric(this.#faults);
  }

  /** The count of one kind (and step), for tests and diagnostics. */
  async count(kind: string, step?: string): Promise<number> {
    const { values } = await this.#faults.get();
    return values
      .filter((v) => v.labels.kind === kind && (step === undefined || v.labels.step === step))
      .reduce((sum, v) => sum + v.value, 0);
  }
}

/**
 * Runs each named step in its own error boundary: a step that throws is reported and the
 * next one still runs, so a failing re-evaluation sweep never stops key retirement or log
 * compaction.
 */
export async function runSteps(
  health: BrokerHealth,
  steps: readonly (readonly [name: string, step: () => Promise<unknown>])[],
): Promise<void> {
  for (const [name, step] of steps) {
    try {
      await step();
    } catch (err) {
      health.sweeperStepFailed(name, err);
    }
  }
}
