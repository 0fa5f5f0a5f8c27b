/**
 * `tether exec`'s command: started without a shell, stopped (SIGTERM, then SIGKILL), and
 * passed the signals that stop a job; and its exit code as a shell reports it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { CliError, EXIT } from '../errors.js';
import { io } from '../io.js';
import { warn } from '../output.js';

/** How long a child has to stop after SIGTERM before it gets SIGKILL. */
const KILL_GRACE_MS = 3_000;
/** What a terminal or a supervisor sends to stop a job: passed on to the command. */
const RELAYED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** The exit code that reports how the command ended, as a shell reports it. */
export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const number = signal === null ? undefined : constants.signals[signal];
  return number === undefined ? EXIT.refused : 128 + number;
}

/**
 * Passes the signals that stop a job on to the command. Installed before the activation, so
 * that a Ctrl-C before the command starts still ends the session instead of killing this
 * process with the session live (and its key gone with it).
 */
export class SignalRelay {
  received: NodeJS.Signals | undefined;
  #child: CommandProcess | undefined;
  readonly #onSignal = (signal: NodeJS.Signals) => {
    // A second one before the command started: the broker is not answering; leave at once.
    if (!this.#child && this.received) process.exit(exitCodeOf(null, signal));
    this.received = signal;
    this.#child?.kill(signal);
  };

  constructor() {
    for (const signal of RELAYED_SIGNALS) process.on(signal, this.#onSignal);
  }

  attach(child: CommandProcess): void {
    this.#child = child;
    // A signal that came between the last check and the spawn.
    if (this.received) child.kill(this.received);
  }

  dispose(): void {
    for (const signal of RELAYED_SIGNALS) process.off(signal, this.#onSignal);
  }
}

/** Throws when a stop signal came before the command started (the caller ends the session). */
export function assertNotInterrupted(relay: SignalRelay, sessionId: string): void {
  const signal = relay.received;
  if (signal === undefined) return;
  throw new CliError(
    'interrupted',
    `${signal} before the command started; session ${sessionId} was ended and nothing was run`,
    exitCodeOf(null, signal),
  );
}

/** The running command, as supervision sees it: on a pipe-less spawn or on a PTY alike. */
export interface CommandProcess {
  kill(signal: NodeJS.Signals): void;
  /** Until it has exited. */
  readonly running: boolean;
}

export interface Child {
  process: CommandProcess;
  /** Its exit code as a shell reports it; 127 / 126 when it could not be started. */
  exited: Promise<number>;
}

function commandProcess(child: ChildProcess): CommandProcess {
  return {
    kill: (signal) => void child.kill(signal),
    get running() {
      return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
    },
  };
}

/** Starts the command without a shell: its arguments reach it as given, never re-parsed. */
export function startChild(name: string, args: string[], env: Record<string, string>): Child {
  const child = spawn(name, args, { stdio: 'inherit', env: { ...io().env, ...env } });
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => resolve(exitCodeOf(code, signal)));
    child.on('error', (err: NodeJS.ErrnoException) => {
      // After a start, an error is a signal that could not be sent: the exit still comes.
      if (child.pid !== undefined) return;
      warn(`tether: cannot run ${name}: ${err.code ?? err.message}`);
      resolve(err.code === 'ENOENT' ? 127 : 126);
    });
  });
  return { process: commandProcess(child), exited };
}

/** SIGTERM, then SIGKILL if the command is still there 3 s later. */
export function stopChild(child: Child): void {
  const running = child.process;
  if (!running.running) return;
  running.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (running.running) running.kill('SIGKILL');
  }, KILL_GRACE_MS);
  void child.exited.then(() => clearTimeout(timer));
}
