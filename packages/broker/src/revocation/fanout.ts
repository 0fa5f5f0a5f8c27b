/** Called with the tenant's newest committed sequence number. */
export type RevocationListener = (seq: number) => void;

/**
 * In-process wake-up for the revocation streams of this broker: a transaction that appended
 * events calls {@link RevocationFanout.notify} after it commits, and every stream of that
 * tenant reads the log again. It is only a hint: the log table is the truth, and a stream
 * that misses a notification catches up at its next heartbeat. On PostgreSQL the
 * replicas sharing one database call it too, for every NOTIFY (see pg-notify.ts).
 *
 * @example
 * ```ts
 * const stop = fanout.subscribe(tenantId, (seq) => stream.wake(seq));
 * tx.onCommit(() => fanout.notify(tenantId, entry.seq));
 * ```
 */
export class RevocationFanout {
  readonly #listeners = new Map<string, Set<RevocationListener>>();

  /** Listens for new events of one tenant; returns the function that stops listening. */
  subscribe(tenantId: string, listener: RevocationListener): () => void {
    let listeners = this.#listeners.get(tenantId);
    if (listeners === undefined) {
      listeners = new Set();
      this.#listeners.set(tenantId, listeners);
    }
    // A wrapper, so that subscribing one function twice gives two independent subscriptions.
    const entry: RevocationListener = (seq) => listener(seq);
    listeners.add(entry);
    return () => {
      listeners.delete(entry);
      if (listeners.size === 0 && this.#listeners.get(tenantId) === listeners)
        this.#listeners.delete(tenantId);
    };
  }

  /** Tells the tenant's listeners that events up to `seq` have committed. Never throws. */
  notify(tenantId: string, seq: number): void {
    for (const listener of [...(this.#listeners.get(tenantId) ?? [])]) {
      try {
        listener(seq);
      } catch {
        // One listener's failure must not keep the others from waking; streams handle their own errors.
      }
    }
  }

  /** The tenants that have listeners now: whom to wake when notifications may have been lost. */
  tenants(): string[] {
    return [...this.#listeners.keys()];
  }

  /** How many listeners a tenant has (for metrics and tests). */
  listenerCount(tenantId: string): number {
    return this.#listeners.get(tenantId)?.size ?? 0;
  }
}
