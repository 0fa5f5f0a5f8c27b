// Child processes for the benchmarks: forked Node scripts that talk to the runner over IPC.
import { fork } from 'node:child_process';
import { createServer } from 'node:net';

/** A loopback port nothing listens on right now (the broker needs its URL before it listens). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/** Epoch milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export function wallNow() {
  return performance.timeOrigin + performance.now();
}

/**
 * A forked script: `send` messages to it, `expect` a message of a type (buffered if it came
 * early), `stop` it. Its output is kept (last 8 KiB) and shown if it dies unexpectedly.
 */
export class Child {
  #child;
  #name;
  #inbox = [];
  #waiters = [];
  #output = '';
  #exited = false;
  #exit;

  constructor(script, name, args = []) {
    this.#name = name;
    // e.g. TETHER_BENCH_CHILD_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile the children;
    // TETHER_BENCH_CHILD_NODE_ARGS_FOR=broker to give them only to the children whose name says so
    // (profiling every process of a loaded run distorts each profile).
    const only = process.env.TETHER_BENCH_CHILD_NODE_ARGS_FOR;
    const execArgv =
      only && !name.includes(only)
        ? []
        : (process.env.TETHER_BENCH_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean);
    this.#child = fork(script, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv });
    const keep = (chunk) => {
      this.#output = (this.#output + chunk.toString()).slice(-8192);
    };
    this.#child.stdout.on('data', keep);
    this.#child.stderr.on('data', keep);
    this.#child.on('message', (message) => this.#deliver(message));
    this.#exit = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        this.#exited = true;
        const failure = new Error(
          `${this.#name} exited (${signal ?? code}) while a message was awaited; its output:\n${this.#output}`,
        );
        for (const waiter of this.#waiters.splice(0)) waiter.reject(failure);
        resolve();
      });
    });
  }

  get name() {
    return this.#name;
  }

  /** The process id (to sample its memory). */
  get pid() {
    return this.#child.pid;
  }

  /** Whether the process has exited (for any reason). */
  get exited() {
    return this.#exited;
  }

  send(message) {
    if (!this.#exited) this.#child.send(message);
  }

  /** The next message of `type` that satisfies `accept`; a child's `{type:'error'}` rejects. */
  expect(type, { timeoutMs = 30_000, accept = () => true } = {}) {
    const index = this.#inbox.findIndex((m) => m.type === 'error' || (m.type === type && accept(m)));
    if (index >= 0) {
      const [message] = this.#inbox.splice(index, 1);
      return message.type === 'error' ? Promise.reject(this.#failure(message)) : Promise.resolve(message);
    }
    if (this.#exited) return Promise.reject(new Error(`${this.#name} has exited:\n${this.#output}`));
    return new Promise((resolve, reject) => {
      const waiter = { type, accept, resolve, reject };
      waiter.timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new Error(`${this.#name}: no '${type}' within ${timeoutMs} ms; its output:\n${this.#output}`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Kills the child with `signal` at once (fault injection: `SIGKILL` is a crash) and waits for its exit. */
  async kill(signal = 'SIGKILL') {
    if (this.#exited) return;
    this.#child.kill(signal);
    await this.#exit;
  }

  /** Asks the child to stop, then kills it if it has not exited within `graceMs`. */
  async stop(graceMs = 5000) {
    if (this.#exited) return;
    this.send({ type: 'stop' });
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await this.#exit;
    clearTimeout(timer);
  }

  #deliver(message) {
    const index = this.#waiters.findIndex(
      (w) => message.type === 'error' || (w.type === message.type && w.accept(message)),
    );
    if (index < 0) {
      this.#inbox.push(message);
      return;
    }
    const [waiter] = this.#waiters.splice(index, 1);
    clearTimeout(waiter.timer);
    if (message.type === 'error') waiter.reject(this.#failure(message));
    else waiter.resolve(message);
  }

  #failure(message) {
    return new Error(`${this.#name}: ${message.message}`);
  }
}

/**
 * The child's side: handles each message with `handlers[type]` (answers with what it returns,
 * if anything); a thrown error is sent as `{type:'error'}`. `stop` runs `onStop` and exits.
 */
export function serveParent(handlers, onStop = async () => undefined) {
  process.on('message', async (message) => {
    if (message.type === 'stop') {
      try {
        await onStop();
      } finally {
        process.exit(0);
      }
    }
    const handler = handlers[message.type];
    if (!handler) {
      process.send({ type: 'error', message: `unknown message ${message.type}` });
      return;
    }
    try {
      const answer = await handler(message);
      if (answer) process.send(answer);
    } catch (err) {
      process.send({
        type: 'error',
        message: err instanceof Error ? (err.stack ?? err.message) : String(err),
      });
    }
  });
  // The runner went away: do not linger.
  process.on('disconnect', () => process.exit(0));
}
