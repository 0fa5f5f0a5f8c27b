import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  backoffDelay,
  SSE_HEARTBEAT_EVENT,
  SSE_REVOCATION_EVENT,
  SSE_SNAPSHOT_EVENT,
} from '@tether-broker/protocol';
import { BrokerCallFailed, type BrokerLink } from './broker-link.js';
import {
  REVOCATION_FEED_DEFAULTS,
  RevocationFeedVerifier,
  RevocationMessageRefused,
  type VerifiedHeartbeat,
} from './events.js';
import type { KeySource } from './jwks.js';
import type { PepLogger } from './logger.js';
import type { RevocationMirror } from './revocation-mirror.js';
import { SseDecoder, type SseMessage } from './sse-decoder.js';

export interface RevocationFollowerOptions {
  link: BrokerLink;
  mirror: RevocationMirror;
  keys: KeySource;
  tenant: string;
  /** The path segment that names this PEP in `POST /v1/peps/:id/ack` (its principal). */
  pepId: string;
  now: () => number;
  /** A heartbeat older than this confers no freshness; also how long a silent stream is kept. */
  stalenessBudgetMs: number;
  /** Delay before reconnecting after a failure: doubles from min to max, with jitter. */
  reconnect: { minDelayMs: number; maxDelayMs: number };
  /** A liveness ack at least this often even when nothing new was applied. Default 5 s. */
  livenessAckIntervalMs?: number;
  /**
   * Acks wait this long after an event is applied, so that one ack covers a burst of events
   * (and a broker with many PEPs gets one write per PEP per burst, not per event). Enforcement
   * never waits for it; only receipts do. Default 100 ms.
   */
  ackDelayMs?: number;
  log: PepLogger;
  /** Called after each event is applied (metrics, tests, benchmarks). */
  onApplied?: (seq: number) => void;
}

/**
 * Follows the tenant's revocation log (`GET /v1/events`) into the mirror: verifies every
 * message (signature, issuer, tenant, order), applies events in order, marks the mirror fresh
 * on every caught-up heartbeat, and acknowledges what it applied (`POST /v1/peps/:id/ack`,
 * coalesced: one call covers every event applied meanwhile, and naming this process's instance
 * id so that receipts wait for every live replica). Every call is DPoP-signed by the PEP's key
 * (see BrokerLink). On any failure — connection
 * refused, stream cut, a refused message, silence longer than the budget — it drops the
 * connection and reconnects with `Last-Event-ID` = the last event applied, so nothing is
 * skipped and nothing is applied twice.
 */
export class RevocationFollower {
  readonly #o: RevocationFollowerOptions;
  readonly #verifier: RevocationFeedVerifier;
  #closed = false;
  #request: ClientRequest | undefined;
  #loop: Promise<void> | undefined;
  #sleep: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  #connected = false;
  #acked = 0;
  #lastAckAt = Number.NEGATIVE_INFINITY;
  #acking: Promise<void> | undefined;
  #ackTimer: NodeJS.Timeout | undefined;
  #lastError: string | undefined;
  #left = false;
  /** When this connection last brought an accepted heartbeat (or opened). */
  #lastBeatAcceptedAt = Number.NEGATIVE_INFINITY;

  constructor(options: RevocationFollowerOptions) {
    this.#o = options;
    this.#verifier = new RevocationFeedVerifier({
      keys: options.keys,
      issuer: options.link.issuer,
      tenant: options.tenant,
      now: options.now,
      heartbeatMaxAgeMs: options.stalenessBudgetMs,
      position: options.mirror.position,
    });
  }

  /** Whether a stream is open now. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Why the last connection failed, if it did (for health reports; never holds secrets). */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Starts following; returns at once. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops following and waits until the connection is gone. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#request?.destroy();
    if (this.#sleep) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.resolve();
    }
    await this.#loop;
    clearTimeout(this.#ackTimer);
    await this.#acking;
    await this.#leave();
  }

  /**
   * Tells the broker this instance is stopping (best effort, briefly): it serves no more
   * requests, so receipts need not wait for it until it falls out of the liveness window.
   */
  async #leave(): Promise<void> {
    if (this.#lastAckAt === Number.NEGATIVE_INFINITY || this.#left) return;
    this.#left = true;
    try {
      await this.#o.link.postJson(
        `/v1/peps/${encodeURIComponent(this.#o.pepId)}/ack`,
        { applied: this.#o.mirror.position, instance: this.#o.link.instance, leaving: true },
        { timeoutMs: 1000 },
      );
    } catch (err) {
      this.#o.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'leave failed');
    }
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#closed) {
      let received = false;
      try {
        received = await this.#follow();
        this.#lastError = 'the stream ended';
      } catch (err) {
        this.#lastError = err instanceof Error ? err.message : String(err);
        if (err instanceof BrokerCallFailed && err.status === 401) this.#o.link.forgetToken();
        if (!this.#closed) this.#o.log.warn({ err: this.#lastError }, 'revocation stream failed');
      }
      this.#connected = false;
      if (this.#closed) break;
      failures = received ? 0 : failures + 1;
      await this.#pause(this.#backoff(failures));
    }
  }

  #backoff(failures: number): number {
    const { minDelayMs, maxDelayMs } = this.#o.reconnect;
    // Jitter on the upper half, so that many PEPs cut off at once do not return in step. The
    // first failure already waits the doubled minimum (the reconnect right after a stream
    // ended cleanly waits the minimum).
    return backoffDelay(failures + 1, { initialMs: minDelayMs, maxMs: maxDelayMs });
  }

  async #pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#sleep = { timer: setTimeout(resolve, ms), resolve };
    });
    this.#sleep = undefined;
  }

  /** One connection: resolves when it ends; whether any message was accepted on it. */
  async #follow(): Promise<boolean> {
    // DPoP-bound: the token alone (stolen from a log or the wire) opens no stream.
    const auth = await this.#o.link.authHeaders('GET', '/v1/events');
    const url = new URL(`${this.#o.link.broker}/v1/events`);
    const position = this.#verifier.position;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(url, {
        headers: {
          ...auth,
          accept: 'text/event-stream',
          ...(position > 0 ? { 'last-event-id': String(position) } : {}),
        },
      });
      this.#request = req;
      req.once('response', resolve);
      req.once('error', reject);
      req.setTimeout(this.#o.stalenessBudgetMs, () => req.destroy(new Error('the broker did not answer')));
      req.end();
      if (this.#closed) req.destroy();
    });
    const nonce = response.headers['dpop-nonce'];
    this.#o.link.observe(Array.isArray(nonce) ? nonce[0] : nonce);
    if (response.statusCode !== 200) throw await refusal(response);
    this.#connected = true;
    this.#lastBeatAcceptedAt = this.#o.now();
    this.#o.log.debug({ position }, 'revocation stream open');
    return this.#consume(response);
  }

  /** Reads the stream one message at a time, in order, until it ends or a message is refused. */
  async #consume(response: IncomingMessage): Promise<boolean> {
    // Room for a snapshot (the largest message the broker sends).
    const decoder = new SseDecoder(REVOCATION_FEED_DEFAULTS.maxSnapshotBytes + 1024);
    let accepted = false;
    response.setEncoding('utf8');
    // Silence longer than the budget means the stream is dead even if the socket is not.
    response.setTimeout(this.#o.stalenessBudgetMs, () =>
      response.destroy(new Error('the stream went silent')),
    );
    try {
      for await (const chunk of response as AsyncIterable<string>) {
        for (const message of decoder.push(chunk)) {
          await this.#handle(message);
          accepted = true;
        }
        if (this.#closed) break;
      }
    } finally {
      response.destroy();
    }
    return accepted;
  }

  async #handle(message: SseMessage): Promise<void> {
    try {
      if (message.event === SSE_REVOCATION_EVENT) {
        const { seq, event } = await this.#verifier.verifyEvent(message.data);
        this.#o.mirror.apply(seq, event);
        this.#o.onApplied?.(seq);
        this.#ackSoon();
      } else if (message.event === SSE_SNAPSHOT_EVENT) {
        const snapshot = await this.#verifier.verifySnapshot(message.data);
        this.#o.mirror.applySnapshot(snapshot.seq, snapshot);
        this.#o.onApplied?.(snapshot.seq);
        this.#ackSoon();
      } else if (message.event === SSE_HEARTBEAT_EVENT) {
        const beat = await this.#lateBeatTolerated(this.#verifier.verifyHeartbeat(message.data));
        if (beat === undefined) return;
        this.#lastBeatAcceptedAt = this.#o.now();
        if (beat.caughtUp) this.#o.mirror.confirmFresh(beat.issuedAt);
        const every = this.#o.livenessAckIntervalMs ?? 5000;
        if (this.#o.now() - this.#lastAckAt >= every) this.#ack(true);
      }
      // Other event types are for newer PEPs; skipping them is safe because only `revocation`
      // messages change what is refused, and their positions leave no gap unnoticed.
    } catch (err) {
      if (err instanceof RevocationMessageRefused) {
        this.#o.log.warn({ code: err.code, reason: err.message }, 'revocation message refused');
      }
      throw err;
    }
  }

  /**
   * The verified heartbeat; undefined for an authentic one that arrived too late to confirm
   * anything (a broker or a PEP host under load: a thousand PEPs starting together). Such a
   * heartbeat is skipped, not fatal: dropping the stream would make the PEP start over — a new
   * connection and snapshot — and add to the load that made it late. Its staleness budget runs
   * on meanwhile (nothing confirms freshness), and a connection that brings no acceptable
   * heartbeat for a whole budget is dropped all the same: a relay replaying old heartbeats keeps
   * the PEP stale and then loses the stream. Forged, replayed or malformed ones end it at once.
   */
  async #lateBeatTolerated(verifying: Promise<VerifiedHeartbeat>): Promise<VerifiedHeartbeat | undefined> {
    try {
      return await verifying;
    } catch (err) {
      const late = err instanceof RevocationMessageRefused && err.code === 'stale';
      if (!late || this.#o.now() - this.#lastBeatAcceptedAt > this.#o.stalenessBudgetMs) throw err;
      this.#o.log.debug({ reason: err.message }, 'late heartbeat skipped');
      return undefined;
    }
  }

  /** Acks after `ackDelayMs`, once for everything applied until then. */
  #ackSoon(): void {
    if (this.#ackTimer !== undefined || this.#closed) return;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      this.#ack();
    }, this.#o.ackDelayMs ?? 100);
  }

  /** Reports the position to the broker; calls made meanwhile are coalesced into the next one. */
  #ack(force = false): void {
    if (!force && this.#o.mirror.position <= this.#acked) return;
    if (this.#acking !== undefined) return;
    this.#acking = (async () => {
      while (!this.#closed) {
        const applied = this.#o.mirror.position;
        try {
          // The instance id tells this process apart from replicas sharing the PEP identity.
          await this.#o.link.postJson(`/v1/peps/${encodeURIComponent(this.#o.pepId)}/ack`, {
            applied,
            instance: this.#o.link.instance,
          });
          this.#acked = Math.max(this.#acked, applied);
          this.#lastAckAt = this.#o.now();
        } catch (err) {
          // Acks are for receipts; enforcement does not depend on them. The next event or
          // liveness interval tries again.
          this.#o.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'ack failed');
          return;
        }
        if (this.#o.mirror.position <= this.#acked) return;
      }
    })().finally(() => {
      this.#acking = undefined;
    });
  }
}

async function refusal(response: IncomingMessage): Promise<BrokerCallFailed> {
  let text = '';
  response.setEncoding('utf8');
  try {
    for await (const chunk of response as AsyncIterable<string>) {
      text += chunk;
      if (text.length > 16_384) break;
    }
  } catch {
    // The body is only for the message.
  }
  response.destroy();
  let code = 'broker_error';
  let detail = `the broker answered ${response.statusCode}`;
  try {
    const body = JSON.parse(text) as { code?: unknown; detail?: unknown };
    if (typeof body.code === 'string') code = body.code;
    if (typeof body.detail === 'string') detail = body.detail;
  } catch {
    // Not a problem document.
  }
  return new BrokerCallFailed(response.statusCode ?? 0, code, detail);
}
