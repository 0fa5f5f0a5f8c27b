import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as delay } from 'node:timers/promises';

/** Where the CLI writes: a process stream, or anything that collects text (tests). */
export interface OutputStream {
  write(chunk: string | Uint8Array): unknown;
  /** True on a terminal: progress spinners and raw-byte output depend on it. */
  readonly isTTY?: boolean | undefined;
  readonly columns?: number | undefined;
}

/**
 * Everything the CLI takes from the world outside its arguments: its output streams, the
 * network, the clock and the environment (`TETHER_HOME`, `TETHER_IDENTITY`, …). `runCli`
 * runs one command line with one of these; tests pass their own instead of patching globals.
 *
 * @example
 * ```ts
 * const out: string[] = [];
 * const code = await runCli(['node', 'tether', 'requests'], {
 *   stdout: { write: (c) => out.push(String(c)) },
 *   env: { TETHER_HOME: home },
 *   fetch: injectFetch(app),
 * });
 * ```
 */
export interface CliIo {
  stdout: OutputStream;
  stderr: OutputStream;
  fetch: typeof fetch;
  /** Epoch milliseconds. */
  now: () => number;
  /** Waits `ms` milliseconds (polling loops); a test's clock may move instead. */
  sleep: (ms: number) => Promise<void>;
  env: NodeJS.ProcessEnv;
}

/** What one run has learnt that the error printer's hints may use. */
export interface RunState {
  identityPath?: string;
  brokerUrl?: string;
}

/** The process's own I/O: the default. */
export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    fetch: (input, init) => globalThis.fetch(input, init),
    now: Date.now,
    sleep: async (ms) => {
      await delay(ms);
    },
    env: process.env,
  };
}

interface Context {
  io: CliIo;
  state: RunState;
}

// Per run, not per process: concurrent runs in one test process each see their own I/O.
const context = new AsyncLocalStorage<Context>();
let outside: Context | undefined;

function current(): Context {
  const inside = context.getStore();
  if (inside) return inside;
  outside ??= { io: processIo(), state: {} };
  return outside;
}

/** The I/O of the command being run (the process's outside of `runCli`). */
export function io(): CliIo {
  return current().io;
}

/** What the command being run has learnt, for hints on failure. */
export function runState(): RunState {
  return current().state;
}

/** Runs `work` with `io` as the I/O every CLI function sees; missing members are the process's. */
export function withIo<T>(given: Partial<CliIo>, work: () => Promise<T>): Promise<T> {
  return context.run({ io: { ...processIo(), ...given }, state: {} }, work);
}
