import { BrokerClient, BrokerError, IdentityError, loadIdentity } from '@tether-broker/client';
import type { IdentityFile } from '@tether-broker/protocol';
import type { SeatView } from '@tether-broker/protocol/api';
import type { Command } from 'commander';
import type { JWK } from 'jose';
import { importJWK } from 'jose/key/import';
import { isConnectionFailure, unreachable } from './errors.js';
import { type GlobalOptions, resolveIdentityPath } from './identity.js';
import { io, runState } from './io.js';
import { printJson } from './output.js';
import { type CachedSeat, forgetSeat, readSeat, seatCustomerOf, seatIdentity, writeSeat } from './seat.js';

/**
 * One command's view of the broker: the global options, the identity it acts as (loaded
 * when first needed) and a client that authenticates with it. A verb declared with
 * `withCustomerSeat` and given `--customer <name>` acts as the operator's seat in that
 * customer's tenant: the seat is taken (`POST /v1/seats`) or read from its cache first.
 */
export class Session {
  readonly globals: GlobalOptions;
  /** The customer tenant the command acts in as a seat (`--customer`), if any. */
  readonly customer: string | undefined;
  /** The identity file's own client: the operator's, in seat mode. */
  #home: BrokerClient | undefined;
  /** The client the command acts with: the home one, or the seat's once it is known. */
  #acting: BrokerClient | undefined;
  /** True when the seat came from the cache (and may be stale). */
  #seatCached = false;
  #keyChecked = false;

  constructor(
    command: Command,
    readonly env: NodeJS.ProcessEnv = io().env,
  ) {
    this.globals = command.optsWithGlobals<GlobalOptions>();
    this.customer = seatCustomerOf(command);
  }

  /** True with `--json`: stdout carries only the API's answer. */
  get json(): boolean {
    return this.globals.json === true;
  }

  /** The identity the command acts as (in seat mode: call {@link ready} first, or any API call). */
  get identity(): IdentityFile {
    return this.client().identity;
  }

  /** The client of the identity file itself (the operator's, with `--customer`). */
  homeClient(): BrokerClient {
    if (!this.#home) {
      const { path } = resolveIdentityPath(this.globals, this.env);
      const state = runState();
      state.identityPath = path;
      const identity = loadIdentity(path);
      state.brokerUrl = identity.broker;
      this.#home = this.#clientFor(identity);
    }
    return this.#home;
  }

  /**
   * The client the command acts with. With `--customer`, the seat's: known here from the seat
   * cache, else only after {@link ready} has taken the seat.
   */
  client(): BrokerClient {
    if (this.#acting) return this.#acting;
    const home = this.homeClient();
    if (this.customer === undefined) {
      this.#acting = home;
      return home;
    }
    const cached = readSeat(home.identity, this.customer, this.env);
    if (!cached) throw new Error(`internal: the seat in ${this.customer} is not taken yet (await ready())`);
    this.#seatCached = true;
    this.#acting = this.#clientFor(seatIdentity(home.identity, cached));
    return this.#acting;
  }

  /** Makes sure the acting identity is known: with `--customer`, takes the seat if it is not cached. */
  async ready(): Promise<BrokerClient> {
    const home = this.homeClient();
    await this.#assertKeyUsable(home.identity);
    if (this.#acting) return this.#acting;
    if (this.customer === undefined || readSeat(home.identity, this.customer, this.env)) return this.client();
    try {
      return await this.#takeSeat(home, this.customer);
    } catch (err) {
      if (isConnectionFailure(err)) throw unreachable(home.baseUrl);
      throw err;
    }
  }

  /** `POST /v1/seats` as the operator; the seat's ids are cached for the next commands. */
  async #takeSeat(home: BrokerClient, customer: string): Promise<BrokerClient> {
    const seat = await home.call<SeatView>('POST', '/v1/seats', { customer });
    const cached: CachedSeat = {
      broker: home.identity.broker,
      customer,
      tenant: seat.tenant,
      principal: seat.principal.id,
      operator: { tenant: home.identity.tenant, principal: home.identity.principal },
    };
    const identity = seatIdentity(home.identity, cached);
    writeSeat(cached, this.env);
    this.#seatCached = false;
    this.#acting = this.#clientFor(identity);
    return this.#acting;
  }

  #clientFor(identity: IdentityFile): BrokerClient {
    const { fetch, now } = io();
    return new BrokerClient({ identity, fetch, now });
  }

  /**
   * Calls the API for the command's answer. A broker that is not there becomes a clear
   * `broker_unreachable` error; with `--json`, a refusal's problem body is the output.
   */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.answer((client) => client.call<T>(method, path, body));
  }

  /** Calls the API for something the command needs on the way (never printed as the answer). */
  async lookup<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.use((client) => client.call<T>(method, path, body));
  }

  /** Like {@link call}, for work that needs more than one plain call (e.g. a DPoP-signed activation). */
  async answer<T>(work: (client: BrokerClient) => Promise<T>): Promise<T> {
    try {
      return await this.use(work);
    } catch (err) {
      if (err instanceof BrokerError && this.json) printJson(err.body);
      throw err;
    }
  }

  /** Like {@link lookup}: runs `work` with the authenticated client; an absent broker is `broker_unreachable`. */
  async use<T>(work: (client: BrokerClient) => Promise<T>): Promise<T> {
    const client = await this.ready();
    try {
      return await work(client);
    } catch (err) {
      if (isConnectionFailure(err)) throw unreachable(client.baseUrl);
      if (this.#staleSeat(err)) {
        // The cached seat is unknown to the broker now (removed): take it again, once. Nothing
        // was done: the refusal came at authentication.
        forgetSeat(this.homeClient().identity, this.customer as string, this.env);
        this.#acting = undefined;
        return this.use(work);
      }
      throw err;
    }
  }

  /** An authentication refusal of a seat read from the cache. */
  #staleSeat(err: unknown): boolean {
    return (
      this.#seatCached &&
      err instanceof BrokerError &&
      (err.code === 'invalid_client' || err.code === 'unauthenticated')
    );
  }

  /** A key that cannot sign is an unusable identity (exit 3), not an internal error. */
  async #assertKeyUsable(identity: IdentityFile): Promise<void> {
    if (this.#keyChecked) return;
    const jwk = identity.key as JWK;
    try {
      await importJWK(jwk, jwk.kty === 'OKP' ? 'EdDSA' : jwk.crv === 'P-384' ? 'ES384' : 'ES256');
    } catch {
      throw new IdentityError(
        `${runState().identityPath ?? 'the identity file'} holds no usable private key`,
      );
    }
    this.#keyChecked = true;
  }

  /** Prints the answer as JSON with `--json`, else the human rendering. */
  emit<T>(answer: T, human: (answer: T) => void): void {
    if (this.json) printJson(answer);
    else human(answer);
  }
}
