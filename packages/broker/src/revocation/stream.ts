import type { ServerResponse } from 'node:http';
import { SSE_HEARTBEAT_EVENT, SSE_SNAPSHOT_EVENT } from '@tether-broker/protocol';
import type { Clock } from '../domain/clock.js';
import type { StoreHandle } from '../store/database.js';
import { SharedEventFrames, sseMessage } from './event-frames.js';

export { sseMessage };

import type { RevocationFanout } from './fanout.js';
import { type RevocationLogEntry, readRevocationLog, revocationHead } from './log.js';
import type { RevocationSigner } from './signing.js';
import { revocationFloor, takeRevocationSnapshot } from './snapshot.js';

/** Events read from the log per query while catching up. */
const PAGE = 500;

/** What every stream of one app shares. */
export interface RevocationStreamDeps {
  store: StoreHandle;
  clock: Clock;
  fanout: RevocationFanout;
  signer: RevocationSigner;
  /**
   * A stream that starts more than this many events behind the head is sent a snapshot instead
   * of replaying them: a thousand PEPs starting from 0 on a log of 100,000 ended sessions would
   * otherwise each be sent (and each verify) 100,000 signed events before becoming fresh.
   */
  snapshotWhenBehind: number;
  /** A heartbeat every this many milliseconds (real time). */
  heartbeatIntervalMs: number;
  /**
   * A stream ends after this long (real time) and the PEP reconnects with `Last-Event-ID`:
   * the connection was authorised by a token that lives no longer than this, and a PEP whose
   * principal has since been disabled must not keep following the log.
   */
  maxLifetimeMs: number;
}

interface StreamLog {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** A read of the log, and when it started (broker clock). */
interface SharedRead<T> {
  value: T;
  /** Everything committed before this instant is in `value`. */
  startedAt: number;
  /** Whether this caller started the read (rather than joining one in flight). */
  own: boolean;
}

/**
 * Reads of the log shared by every stream of this process: the streams one commit wakes ask
 * for the same page at the same moment, and one query answers them all. A joined read may have
 * started before the commit a stream was woken for; the stream notices (its position is still
 * behind the notified sequence number) and reads again. Finished reads are never reused.
 */
class SharedLogReader {
  readonly #inFlight = new Map<string, Promise<{ value: unknown; startedAt: number }>>();

  constructor(
    private readonly store: StoreHandle,
    private readonly clock: Clock,
  ) {}

  page(tenantId: string, after: number): Promise<SharedRead<RevocationLogEntry[]>> {
    return this.#share(`page\u0000${tenantId}\u0000${after}`, () =>
      readRevocationLog(this.store, tenantId, after, PAGE),
    );
  }

  floor(tenantId: string): Promise<SharedRead<number>> {
    return this.#share(`floor\u0000${tenantId}`, () => revocationFloor(this.store, tenantId));
  }

  head(tenantId: string): Promise<SharedRead<number>> {
    return this.#share(`head\u0000${tenantId}`, () => revocationHead(this.store, tenantId));
  }

  async #share<T>(key: string, read: () => Promise<T>): Promise<SharedRead<T>> {
    const pending = this.#inFlight.get(key);
    if (pending !== undefined) return { ...((await pending) as { value: T; startedAt: number }), own: false };
    const startedAt = this.clock.now();
    const started = read().then((value) => ({ value, startedAt }));
    this.#inFlight.set(key, started);
    try {
      return { ...(await started), own: true };
    } finally {
      if (this.#inFlight.get(key) === started) this.#inFlight.delete(key);
    }
  }
}

/** A signed snapshot as the SSE message every stream sends, encoded once. */
interface SnapshotMessage {
  seq: number;
  bytes: Buffer;
}

/**
 * The latest snapshot of each tenant, taken and signed once and sent as the same bytes to
 * every stream that needs one: a thousand PEPs starting together cost one snapshot, not a
 * thousand. A snapshot stays usable while the events after it are still in the log (its
 * position is not behind the floor) and it is not itself far behind the head; streams then
 * catch up from its position like from any other.
 */
class SharedSnapshots {
  readonly #latest = new Map<string, SnapshotMessage>();
  readonly #taking = new Map<string, Promise<SnapshotMessage>>();

  constructor(
    private readonly deps: Pick<RevocationStreamDeps, 'store' | 'clock' | 'signer' | 'snapshotWhenBehind'>,
  ) {}

  async get(tenantId: string, floor: number, head: number): Promise<SnapshotMessage> {
    const latest = this.#latest.get(tenantId);
    if (latest !== undefined && latest.seq >= floor && head - latest.seq <= this.deps.snapshotWhenBehind / 2)
      return latest;
    let taking = this.#taking.get(tenantId);
    if (taking === undefined) {
      taking = this.#take(tenantId).finally(() => this.#taking.delete(tenantId));
      this.#taking.set(tenantId, taking);
    }
    return taking;
  }

  async #take(tenantId: string): Promise<SnapshotMessage> {
    const snapshot = await takeRevocationSnapshot(this.deps.store, tenantId, this.deps.clock.now());
    const jws = await this.deps.signer.snapshot(snapshot);
    const message = {
      seq: snapshot.seq,
      bytes: Buffer.from(sseMessage({ id: snapshot.seq, event: SSE_SNAPSHOT_EVENT, data: jws })),
    };
    const latest = this.#latest.get(tenantId);
    if (latest === undefined || message.seq >= latest.seq) this.#latest.set(tenantId, message);
    return message;
  }
}

/**
 * The open revocation streams of one app: starts them, and ends them all when the app
 * closes (so that closing never waits on a PEP that would keep its connection forever).
 */
export class RevocationStreams {
  readonly #open = new Set<RevocationStream>();
  readonly #reader: SharedLogReader;
  readonly #snapshots: SharedSnapshots;
  readonly #frames: SharedEventFrames;
  #closing = false;

  constructor(private readonly deps: RevocationStreamDeps) {
    this.#reader = new SharedLogReader(deps.store, deps.clock);
    this.#snapshots = new SharedSnapshots(deps);
    this.#frames = new SharedEventFrames(deps.signer);
  }

  /**
   * Streams the tenant's log after `after` into `response`, which nothing else may write to
   * (a hijacked reply): first the events already committed, in order, then each new one as it
   * commits, with a signed heartbeat every `heartbeatIntervalMs`. Returns at once.
   */
  start(
    response: ServerResponse,
    options: { tenantId: string; after: number; requestId: string; log: StreamLog },
  ): void {
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // Reverse proxies (nginx) must pass each message on as it comes, not buffer the stream.
      'x-accel-buffering': 'no',
      'x-request-id': options.requestId,
    });
    response.flushHeaders();
    if (this.#closing) {
      response.end();
      return;
    }
    const stream = new RevocationStream(
      this.deps,
      this.#reader,
      this.#snapshots,
      this.#frames,
      response,
      options.tenantId,
      options.after,
      options.log,
    );
    this.#open.add(stream);
    void stream.done.then(() => this.#open.delete(stream));
  }

  /** How many streams are open. */
  get size(): number {
    return this.#open.size;
  }

  /** Ends every stream cleanly (the PEPs reconnect elsewhere) and waits until they are gone. */
  async closeAll(graceMs = 1000): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#open].map((stream) => stream.shutdown(graceMs)));
  }
}

/** One PEP's connection: a loop that catches up from the log, sends heartbeats and waits to be woken. */
class RevocationStream {
  /** The last sequence number written to the response. */
  #sent: number;
  /** Until the first catch-up: whether the PEP starts far behind is asked once, at the start. */
  #opening = true;
  #closed = false;
  /** Set by a wake-up; cleared when a catch-up starts, so a wake-up during one is not lost. */
  #woken = false;
  /** The newest sequence number a wake-up announced: the catch-up must reach it. */
  #announced = 0;
  #wakeUp: (() => void) | undefined;
  readonly #stopped = new AbortController();
  readonly #unsubscribe: () => void;
  readonly #lifetime: NodeJS.Timeout;
  readonly #finished: Promise<void>;
  readonly done: Promise<void>;

  constructor(
    private readonly deps: RevocationStreamDeps,
    private readonly reader: SharedLogReader,
    private readonly snapshots: SharedSnapshots,
    private readonly frames: SharedEventFrames,
    private readonly response: ServerResponse,
    private readonly tenantId: string,
    after: number,
    private readonly log: StreamLog,
  ) {
    this.#sent = after;
    this.#unsubscribe = deps.fanout.subscribe(tenantId, (seq) => this.#wake(seq));
    this.#finished = new Promise((resolve) => {
      response.once('close', resolve);
      response.once('finish', resolve);
    });
    // The client went away (or the socket failed): stop at once. An 'error' without a
    // listener would crash the process.
    response.on('close', () => this.close());
    response.on('error', () => this.close());
    this.#lifetime = setTimeout(() => this.close(), deps.maxLifetimeMs);
    this.#lifetime.unref();
    log.debug({ tenant: tenantId, after }, 'revocation stream opened');
    this.done = this.#run();
  }

  async #run(): Promise<void> {
    let nextHeartbeat = 0;
    /** The `at` of the last heartbeat sent (a shared one may be a little older than `at`). */
    let lastBeatAt = Number.NEGATIVE_INFINITY;
    try {
      while (!this.#closed) {
        this.#woken = false;
        // When the catch-up's first read started: everything committed before that instant is
        // in what it read, which is what the heartbeat then claims.
        const at = await this.#catchUp();
        if (this.#closed) break;
        if (performance.now() >= nextHeartbeat) {
          const beat = await this.deps.signer.heartbeat(this.tenantId, this.#sent, at, lastBeatAt);
          lastBeatAt = beat.at;
          const jws = beat.jws;
          await this.#write(sseMessage({ event: SSE_HEARTBEAT_EVENT, data: jws }));
          nextHeartbeat = performance.now() + this.deps.heartbeatIntervalMs;
        }
        await this.#idle(nextHeartbeat - performance.now());
      }
    } catch (err) {
      if (!this.#closed) {
        this.log.warn({ err, tenant: this.tenantId }, 'revocation stream failed; closing it');
        // The client may not be reading at all: do not wait for it to take what is buffered.
        this.response.destroy();
      }
    } finally {
      this.close();
      this.log.debug({ tenant: this.tenantId, sent: this.#sent }, 'revocation stream closed');
    }
  }

  /**
   * Sends every committed event after the last one sent, in order. The table is the truth.
   * When events after the last one sent have been compacted away, or the stream starts more
   * than `snapshotWhenBehind` events behind, sends a signed snapshot first and continues from the
   * position it stands for.
   */
  async #catchUp(): Promise<number> {
    const floor = await this.reader.floor(this.tenantId);
    // The heartbeat may claim only the earliest start of the reads it rests on (a joined read
    // may have started before this one's floor read).
    let at = floor.startedAt;
    if (this.#sent < floor.value || this.#opening) {
      this.#opening = false;
      const head = await this.reader.head(this.tenantId);
      at = Math.min(at, head.startedAt);
      if (this.#sent < floor.value || head.value - this.#sent > this.deps.snapshotWhenBehind) {
        const snapshot = await this.snapshots.get(this.tenantId, floor.value, head.value);
        // Never backwards: a shared snapshot no newer than what this stream has sent adds nothing.
        if (snapshot.seq > this.#sent) {
          await this.#write(snapshot.bytes);
          this.#sent = snapshot.seq;
        }
      }
    }
    for (;;) {
      const page = await this.reader.page(this.tenantId, this.#sent);
      at = Math.min(at, page.startedAt);
      for (const entry of page.value) {
        if (this.#closed) return at;
        await this.#write(await this.frames.get(entry));
        this.#sent = entry.seq;
      }
      if (page.value.length === PAGE) continue;
      if (this.#sent < this.#announced) {
        // A joined read began before the announced commit: read again. A read of our own that
        // still falls short means the announcement was ahead of the log: stop waiting for it.
        if (page.own) this.#announced = this.#sent;
        else this.#woken = true;
      }
      return at;
    }
  }

  /**
   * Writes with back-pressure: when the socket's buffer is full, waits for it to drain. A
   * client that takes nothing for a long time is cut off rather than buffered for.
   */
  async #write(chunk: string | Buffer): Promise<void> {
    if (this.#closed || this.response.write(chunk)) return;
    const stallMs = Math.max(10_000, 10 * this.deps.heartbeatIntervalMs);
    await new Promise<void>((resolve, reject) => {
      const settle = (failure?: Error) => {
        clearTimeout(timer);
        this.response.off('drain', onDrain);
        this.#stopped.signal.removeEventListener('abort', onStop);
        failure ? reject(failure) : resolve();
      };
      const onDrain = () => settle();
      const onStop = () => settle();
      const timer = setTimeout(() => settle(new Error(`the client took nothing for ${stallMs} ms`)), stallMs);
      this.response.once('drain', onDrain);
      this.#stopped.signal.addEventListener('abort', onStop, { once: true });
    });
  }

  /** Waits until woken, until `ms` have passed, or until the stream closes. */
  async #idle(ms: number): Promise<void> {
    if (this.#woken || this.#closed) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#wakeUp = resolve;
      timer = setTimeout(resolve, Math.max(0, ms));
    });
    clearTimeout(timer);
    this.#wakeUp = undefined;
  }

  #wake(seq: number): void {
    if (seq > this.#announced) this.#announced = seq;
    this.#woken = true;
    this.#wakeUp?.();
  }

  /** Stops the loop and ends the response; safe to call more than once, from anywhere. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    clearTimeout(this.#lifetime);
    this.#stopped.abort();
    this.#wakeUp?.();
    if (!this.response.writableEnded && !this.response.destroyed) this.response.end();
  }

  /** Closes, waits for the loop to stop, and gives the client `graceMs` to take the end of the stream. */
  async shutdown(graceMs: number): Promise<void> {
    this.close();
    await this.done;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    if ((await Promise.race([this.#finished, late])) === 'late') this.response.destroy();
    clearTimeout(timer);
  }
}
