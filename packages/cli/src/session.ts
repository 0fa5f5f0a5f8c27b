import { BrokerClient, BrokerError, IdentityError, loadIdentity } from '@tether-broker/client';
import type { IdentityFile } from '@tether-broker/protocol';
import type { Command } from 'commander';
import type { JWK } from 'jose';
import { importJWK } from 'jose/key/import';
import { isConnectionFailure, unreachable } from './errors.js';
import { type GlobalOptions, resolveIdentityPath } from './identity.js';
import { io, runState } from './io.js';
import { printJson } from './output.js';

/**
 * One command's view of the broker: the global options, the identity it acts as (loaded
 * when first needed) and a client that authenticates with it.
 */
export class Session {
  readonly globals: GlobalOptions;
  #client: BrokerClient | undefined;
  #keyChecked = false;

  constructor(
    command: Command,
    readonly env: NodeJS.ProcessEnv = io().env,
  ) {
    this.globals = command.optsWithGlobals<GlobalOptions>();
  }

  /** True with `--json`: stdout carries only the API's answer. */
  get json(): boolean {
    return this.globals.json === true;
  }

  get identity(): IdentityFile {
    return this.client().identity;
  }

  client(): BrokerClient {
    if (!this.#client) {
      const { path } = resolveIdentityPath(this.globals, this.env);
      const state = runState();
      state.identityPath = path;
      const identity = loadIdentity(path);
      state.brokerUrl = identity.broker;
      const { fetch, now } = io();
      this.#client = new BrokerClient({ identity, fetch, now });
    }
    return this.#client;
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
    const client = this.client();
    await this.#assertKeyUsable(client.identity);
    try {
      return await work(client);
    } catch (err) {
      if (isConnectionFailure(err)) throw unreachable(client.baseUrl);
      throw err;
    }
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
