import { createHash } from 'node:crypto';
import { backoffDelay } from '@tether-broker/protocol';
import { sql } from 'kysely';
import type pg from 'pg';
import type { Store, TxHandle } from '../store/database.js';
import { readRevocationHead } from '../store/repositories/revocations.js';
import type { RevocationFanout } from './fanout.js';

/**
 * Replicas on PostgreSQL: the transaction that appends revocation events also queues a
 * `NOTIFY` (PostgreSQL delivers it only if the transaction commits, after it has, in commit
 * order), and every broker process holds one connection that `LISTEN`s and wakes its own
 * streams. A notification is only a hint, never the event: a stream re-reads the log table
 * when woken and at every heartbeat, so a replica that misses one still catches up.
 */

const CHANNEL_PREFIX = 'tether_revocations_';
/** PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1) and refuses longer channels. */
const MAX_IDENTIFIER_BYTES = 63;

/**
 * The channel of the log stored in `schema`: brokers on other schemas of the same database
 * (other deployments, parallel test suites) must not wake each other. Long schema names are
 * hashed to stay within PostgreSQL's identifier limit.
 *
 * @example
 * ```ts
 * revocationChannel('tether'); // 'tether_revocations_tether'
 * ```
 */
export function revocationChannel(schema: string): string {
  const plain = `${CHANNEL_PREFIX}${schema}`;
  if (Buffer.byteLength(plain) <= MAX_IDENTIFIER_BYTES) return plain;
  return `${CHANNEL_PREFIX}${createHash('sha256').update(schema).digest('hex').slice(0, 40)}`;
}

/** Queues, inside `tx`, the notification that the tenant's log reached `seq`; sent on commit only. */
export async function notifyOnCommit(tx: TxHandle, tenantId: string, seq: number): Promise<void> {
  const channel = revocationChannel(tx.pgSchema ?? 'public');
  await sql`select pg_notify(${channel}, ${`${tenantId}:${seq}`})`.execute(tx.db);
}

/** `<tenantId>:<seq>` back into its parts; undefined for anything else. */
export function parseRevocationNotification(
  payload: string | undefined,
): { tenantId: string; seq: number } | undefined {
  const match = /^([^:\s]{1,200}):([1-9][0-9]{0,15})$/.exec(payload ?? '');
  if (match === null) return undefined;
  const seq = Number(match[2]);
  return Number.isSafeInteger(seq) ? { tenantId: match[1] as string, seq } : undefined;
}

interface ListenerLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface RevocationListenerOptions {
  /** A PostgreSQL store: the listener opens its own connection with the store's settings. */
  store: Store;
  fanout: RevocationFanout;
  logger: ListenerLog;
  /** Wait before the first reconnection attempt; doubled after each failed one (default 100 ms). */
  retryInitialMs?: number;
  /** Longest wait between attempts (default 10 s). */
  retryMaxMs?: number;
  /** Waits `ms`, or less if `signal` aborts. Tests pass one they release themselves. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** Real-time sleep that ends early when the listener closes. */
function sleepFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

/**
 * This process's `LISTEN` connection: wakes the fanout for every notification (its own
 * commits' included: a stream woken twice just reads the table once more). When the
 * connection drops it reconnects with backoff, and once listening again wakes every tenant's
 * streams, since notifications sent meanwhile are lost. Not taken from the pool: a pooled
 * client would be handed back and its LISTEN would end up on someone else's queries.
 *
 * @example
 * ```ts
 * const listener = await RevocationNotifyListener.start({ store, fanout, logger });
 * // …
 * await listener.close();
 * ```
 */
export class RevocationNotifyListener {
  readonly channel: string;
  readonly #options: RevocationListenerOptions;
  readonly #newClient: () => pg.Client;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #stopped = new AbortController();
  #client: pg.Client | undefined;
  #listening = false;
  #loop: Promise<void> = Promise.resolve();

  private constructor(options: RevocationListenerOptions, newClient: () => pg.Client) {
    this.#options = options;
    this.#newClient = newClient;
    this.channel = revocationChannel(options.store.pgSchema ?? 'public');
    this.#sleep = options.sleep ?? sleepFor;
  }

  /**
   * Starts listening; resolves after the first attempt, whether it succeeded or not (the
   * broker serves either way: its streams still catch up at every heartbeat). Answers
   * undefined for a store that is not PostgreSQL: one process, nothing to listen to.
   */
  static async start(options: RevocationListenerOptions): Promise<RevocationNotifyListener | undefined> {
    const { store } = options;
    const newClient = store.dedicatedClient?.bind(store);
    if (store.dialect !== 'postgres' || newClient === undefined) return undefined;
    const listener = new RevocationNotifyListener(options, newClient);
    let firstAttempt: () => void = () => undefined;
    const attempted = new Promise<void>((resolve) => {
      firstAttempt = resolve;
    });
    listener.#loop = listener.#run(firstAttempt);
    await attempted;
    return listener;
  }

  /** True while `LISTEN` is in force on a live connection. */
  get listening(): boolean {
    return this.#listening;
  }

  /** The PostgreSQL backend process id of the connection, while there is one (pg_stat_activity.pid). */
  get backendPid(): number | undefined {
    return this.#listening ? (this.#client as { processID?: number } | undefined)?.processID : undefined;
  }

  /** Stops listening and ends the connection; no reconnection after this. */
  async close(): Promise<void> {
    this.#stopped.abort();
    const client = this.#client;
    this.#client = undefined;
    this.#listening = false;
    await client?.end().catch(() => undefined);
    await this.#loop;
  }

  /** Connect, listen, wait for the connection to drop, back off, again: until closed. */
  async #run(firstAttempt: () => void): Promise<void> {
    const { logger } = this.#options;
    let failures = 0;
    let missedSome = false;
    while (!this.#stopped.signal.aborted) {
      try {
        const { lost } = await this.#listen();
        failures = 0;
        logger.info({ channel: this.channel }, 'listening for revocation notifications');
        firstAttempt();
        // Whatever was committed while nobody listened is in the table: send every stream to read it.
        if (missedSome) await this.#wakeEveryStream();
        missedSome = true;
        const cause = await lost;
        if (this.#stopped.signal.aborted) break;
        logger.warn(
          { err: cause, channel: this.channel },
          'revocation listener lost its connection; reconnecting',
        );
      } catch (err) {
        missedSome = true;
        firstAttempt();
        if (this.#stopped.signal.aborted) break;
        failures += 1;
        logger.warn(
          { err, channel: this.channel, failures },
          'revocation listener could not listen; will retry',
        );
      }
      await this.#sleep(this.#backoff(failures), this.#stopped.signal);
    }
  }

  #backoff(failures: number): number {
    // Right after a lost connection (no failure yet) the first wait is the initial one. One
    // connection per broker: nothing to spread out, so the whole wait.
    return backoffDelay(
      failures,
      { initialMs: this.#options.retryInitialMs ?? 100, maxMs: this.#options.retryMaxMs ?? 10_000 },
      () => 1,
    );
  }

  /**
   * Connects and LISTENs; answers a promise that settles (with the cause) when the connection
   * is gone. Wrapped in an object: an async function returning a promise would wait for it.
   */
  async #listen(): Promise<{ lost: Promise<unknown> }> {
    const client = this.#newClient();
    let markLost: (cause: unknown) => void = () => undefined;
    const lost = new Promise<unknown>((resolve) => {
      markLost = resolve;
    });
    // Registered before connecting: an 'error' without a listener would crash the process.
    // An old connection's late events must not touch the state of the one that replaced it.
    const current = () => this.#client === client;
    client.on('error', (err) => {
      if (current()) this.#listening = false;
      markLost(err);
      void client.end().catch(() => undefined);
    });
    client.on('end', () => {
      if (current()) this.#listening = false;
      markLost(undefined);
    });
    client.on('notification', (message) => this.#onNotification(message));
    this.#client = client;
    try {
      await client.connect();
      if (this.#stopped.signal.aborted) throw new Error('the listener was closed');
      await client.query(`LISTEN "${this.channel}"`);
    } catch (err) {
      if (this.#client === client) this.#client = undefined;
      await client.end().catch(() => undefined);
      throw err;
    }
    // Closed while LISTEN was on its way: the close has ended this client already.
    this.#listening = !this.#stopped.signal.aborted;
    return { lost };
  }

  #onNotification(message: pg.Notification): void {
    if (message.channel !== this.channel) return;
    const parsed = parseRevocationNotification(message.payload);
    // Anyone who can connect may NOTIFY; a stray one only makes streams read the table again.
    if (parsed === undefined) {
      this.#options.logger.debug({ channel: this.channel }, 'ignored a malformed revocation notification');
      return;
    }
    this.#options.fanout.notify(parsed.tenantId, parsed.seq);
  }

  async #wakeEveryStream(): Promise<void> {
    const tenants = this.#options.fanout.tenants();
    for (const tenantId of tenants) {
      try {
        this.#options.fanout.notify(tenantId, await readRevocationHead(this.#options.store, tenantId));
      } catch (err) {
        // The heartbeat's re-read will do it instead.
        this.#options.logger.warn(
          { err, tenant: tenantId },
          'could not read a revocation head after reconnecting',
        );
      }
    }
    this.#options.logger.info(
      { channel: this.channel, tenants: tenants.length },
      "revocation listener reconnected; woke every tenant's streams to catch up from the log",
    );
  }
}
