import { DELIVERY_POLICY } from '../ssf/delivery-policy.js';
import { onOutboxCommitted } from '../ssf/outbox.js';
import { type DeliveryOptions, deliverDue } from './delivery.js';

type Ctx = Parameters<typeof deliverDue>[0];

export interface SsfDeliveryWorker {
  /** Stops the timer and waits for the pass in progress, if any. */
  stop(): Promise<void>;
}

/**
 * Runs {@link deliverDue} in the background: at once when this process commits new outbox
 * entries, and every `intervalMs` for everything else (other replicas' entries, backoffs that
 * ended, leases that ran out). Passes never overlap; a wake-up during a pass runs another one
 * right after it. The outbox table is the truth: a lost wake-up only delays a SET.
 */
export function startSsfDelivery(ctx: Ctx, options: DeliveryOptions = {}): SsfDeliveryWorker {
  const intervalMs = options.policy?.intervalMs ?? DELIVERY_POLICY.intervalMs;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  const pass = async () => {
    do {
      again = false;
      try {
        const report = await deliverDue(ctx, ctx.clock.now(), options);
        // Something moved: more may be due right behind it (the burst limit, a stream just enabled).
        if (report.delivered + report.refused > 0) again = true;
      } catch (err) {
        ctx.logger.error({ err }, 'SSF delivery pass failed; will retry');
      }
    } while (again && !stopped);
  };
  const kick = () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = pass().finally(() => {
      running = undefined;
    });
  };

  const unsubscribe = onOutboxCommitted(() => kick());
  const timer = setInterval(kick, intervalMs);
  timer.unref();
  kick();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      unsubscribe();
      await running;
    },
  };
}
