/**
 * `tether exec`'s command on a pseudo-terminal, for sessions that must run recorded: what it
 * writes goes to this terminal and into the recording, keystrokes go to it (and into the
 * recording when the privilege records input), and the window size follows this terminal's.
 */
import { accessSync, constants as fs } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { SessionRecorder } from '@tether-broker/client';
import { CliError, EXIT } from '../errors.js';
import { io } from '../io.js';
import { warn } from '../output.js';
import type { Child } from './exec-child.js';

/** Output buffered for the broker beyond this pauses the command's output until it drains. */
const BACKLOG_HIGH_BYTES = 1024 * 1024;
const BACKLOG_LOW_BYTES = 256 * 1024;
/** What a terminal that says nothing of itself is taken to be. */
const DEFAULT_SIZE = { cols: 80, rows: 24 };

type PtyModule = typeof import('node-pty');

/** node-pty, an optional dependency: a recorded session cannot run without it. */
async function loadPty(): Promise<PtyModule> {
  try {
    const loaded = (await import('node-pty')) as PtyModule & { default?: PtyModule };
    return loaded.default ?? loaded;
  } catch {
    throw new CliError(
      'recording_unavailable',
      'this privilege requires a recorded session, which runs the command on a pseudo-terminal, and node-pty is not installed; nothing was run',
      EXIT.missingPackage,
      'install it next to the CLI: npm install node-pty',
    );
  }
}

/** Whether `name` can be run (as the shell would find it): a PTY reports no ENOENT of its own. */
function executable(name: string, env: NodeJS.ProcessEnv): boolean {
  const candidates = name.includes('/')
    ? [name]
    : (env.PATH ?? '').split(delimiter).map((dir) => join(dir === '' ? '.' : dir, name));
  return candidates.some((path) => {
    try {
      accessSync(path, fs.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export interface RecordedChild extends Child {
  /** Called when the recorder has sent a chunk: output paused for a backlog resumes. */
  relieve(): void;
  /** Gives this terminal back (raw mode off, listeners gone). */
  dispose(): void;
}

/**
 * Starts the command on a PTY, its recording started first so that nothing it writes is
 * missed. Resolves with a child whose exit code is reported as a shell reports it (127 when the
 * command is not found, as without a PTY).
 */
export async function startRecordedChild(
  name: string,
  args: string[],
  env: Record<string, string>,
  recorder: SessionRecorder,
): Promise<RecordedChild> {
  const pty = await loadPty();
  const fullEnv = { ...io().env, ...env };
  if (!executable(name, fullEnv)) {
    warn(`tether: cannot run ${name}: ENOENT`);
    return {
      process: { kill: () => undefined, running: false },
      exited: Promise.resolve(127),
      relieve() {},
      dispose() {},
    };
  }
  const stdout = process.stdout;
  const stdin = process.stdin;
  const size = () =>
    stdout.isTTY && stdout.columns > 0 ? { cols: stdout.columns, rows: stdout.rows } : DEFAULT_SIZE;
  const { cols, rows } = size();
  const term = fullEnv.TERM ?? 'xterm-256color';
  recorder.start(cols, rows, { TERM: term });
  const child = pty.spawn(name, args, {
    name: term,
    cols,
    rows,
    cwd: process.cwd(),
    env: { ...fullEnv, TERM: term } as Record<string, string>,
  });
  let running = true;
  let paused = false;
  const exited = new Promise<number>((resolve) => {
    child.onExit(({ exitCode, signal }) => {
      running = false;
      // Keystrokes stop going to a terminal that is closing (a write there fails with EBADF).
      stdin.off('data', onInput);
      resolve(signal ? 128 + signal : exitCode);
    });
  });
  child.onData((data) => {
    stdout.write(data);
    recorder.output(data);
    if (!paused && recorder.backlog > BACKLOG_HIGH_BYTES) {
      paused = true;
      child.pause();
    }
  });
  const onInput = (data: Buffer) => {
    // Typed after the command exited (its terminal closed): nowhere to go, nothing to record.
    if (!running) return;
    const text = data.toString('utf8');
    child.write(text);
    recorder.input(text);
  };
  const onResize = () => {
    const next = size();
    child.resize(next.cols, next.rows);
    recorder.resize(next.cols, next.rows);
  };
  // Input that is not a terminal (a pipe, a file) ends: the command's terminal then reads EOF.
  const onEnd = () => {
    if (running) child.write('\x04');
  };
  const rawBefore = stdin.isTTY ? stdin.isRaw : false;
  // Keystrokes go to the command as typed (Ctrl-C included, which its terminal turns into SIGINT).
  if (stdin.isTTY) stdin.setRawMode(true);
  stdin.on('data', onInput);
  if (!stdin.isTTY) stdin.on('end', onEnd);
  stdout.on('resize', onResize);
  return {
    process: {
      kill: (signal) => {
        try {
          child.kill(signal);
        } catch {
          // Already gone.
        }
      },
      get running() {
        return running;
      },
    },
    exited,
    relieve() {
      if (paused && recorder.backlog < BACKLOG_LOW_BYTES) {
        paused = false;
        child.resume();
      }
    },
    dispose() {
      stdin.off('data', onInput);
      stdin.off('end', onEnd);
      stdout.off('resize', onResize);
      if (stdin.isTTY) stdin.setRawMode(rawBefore);
      stdin.pause();
    },
  };
}
