import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The network source (client address) of the HTTP request being served, carried through the
 * use cases without threading it through every signature: refusal records are counted per
 * source, and the services that record them know nothing of HTTP.
 */
const requestSource = new AsyncLocalStorage<string>();

/** Runs `fn` (and everything it starts) as part of a request from `source`. */
export function runAsSource<T>(source: string, fn: () => T): T {
  return requestSource.run(source, fn);
}

/** The source of the request being served; `internal` outside any request (sweeper, workers). */
export function currentSource(): string {
  return requestSource.getStore() ?? 'internal';
}
