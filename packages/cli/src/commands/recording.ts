import { writeFileSync } from 'node:fs';
import { isTetherError, parseCast } from '@tether-broker/protocol';
import { type Command, InvalidArgumentError } from 'commander';
import { DEFAULT_IDLE_LIMIT, replaySchedule, SafeTerminalStream } from '../cast-player.js';
import { CliError, EXIT } from '../errors.js';
import { io } from '../io.js';
import { printJson, warn } from '../output.js';
import { Session } from '../session.js';

/** `GET /v1/sessions/:id/recording`: a session's recording and its integrity summary. */
export interface RecordingAnswer {
  session_id: string;
  mode: 'output' | 'input_and_output';
  chunks: number;
  bytes: number;
  /** Hex SHA-256 chain over the chunks' hashes. */
  digest: string;
  /** False when the recording stopped before the session ended (the uploader went away). */
  complete: boolean;
  /** The whole asciicast v2 text. */
  cast: string;
  /**
   * Whether the chunks served still chain to the digest the broker recorded; false means the
   * stored chunks were altered. Absent from a broker that does not check.
   */
  intact?: boolean;
}

interface PlayFlags {
  speed?: number;
  idleLimit?: number;
  instant?: boolean;
}

interface ExportFlags {
  output?: string;
}

/** A positive, finite number of something (`--speed 1.5`, `--idle-limit 0.5`). */
function positiveNumber(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0)
    throw new InvalidArgumentError('must be a number greater than 0');
  return value;
}

/** `tether recording play|export`: recorded sessions (asciicast v2), for auditors. */
export function registerRecording(program: Command): void {
  const recording = program
    .command('recording')
    .description("play back or export a session's recording (auditors and admins)");
  recording
    .command('play <session-id>')
    .description('replay the recorded output in this terminal, with its timing')
    .option('--speed <x>', 'playback speed: 2 is twice as fast (default 1)', positiveNumber)
    .option(
      '--idle-limit <seconds>',
      `cap every pause at this (default ${DEFAULT_IDLE_LIMIT}; the recording's own limit applies if lower)`,
      positiveNumber,
    )
    .option('--instant', 'write all the output at once, without pauses')
    .action(play);
  recording
    .command('export <session-id>')
    .description('write the recording as an asciicast v2 file (or to stdout)')
    .option('--output <file>', 'write to this new file (mode 0600; an existing file is not overwritten)')
    .action(exportRecording);
}

/** Printed on stderr, before the replay or the export, when the store was altered. */
export const ALTERED_WARNING =
  'tether: WARNING: this recording does not match the digest the broker recorded: it was altered in the store (run tether audit verify)';

/**
 * Everything a replay may have changed in the terminal, set back: attributes, charset G0,
 * cursor shown and of the default style, autowrap, keypad, scroll region (inside save and
 * restore, as resetting it homes the cursor), and, defensively, the modes the filter never
 * lets through: alternate screen, insert, newline mode, cursor keys, bracketed paste, mouse.
 */
export const TERMINAL_RESTORE = [
  '\u001b[0m',
  '\u001b(B',
  '\u001b7\u001b[r\u001b8',
  '\u001b[?25h',
  '\u001b[0 q',
  '\u001b[?7h',
  '\u001b>',
  '\u001b[?1049l',
  '\u001b[4l',
  '\u001b[20l',
  '\u001b[?1l',
  '\u001b[?2004l',
  '\u001b[?1000l',
  '\u001b[?1002l',
  '\u001b[?1003l',
  '\u001b[?1004l',
  '\u001b[?1006l',
].join('');

/**
 * The cap on pauses: `--idle-limit`, else the default; the recording's own limit is the
 * recorded command's to choose, so it may only lower the cap, never raise it.
 */
export function idleLimit(flag: number | undefined, recorded: number | undefined): number {
  const cap = flag ?? DEFAULT_IDLE_LIMIT;
  return recorded !== undefined && Number.isFinite(recorded) && recorded > 0 && recorded < cap
    ? recorded
    : cap;
}

/** The warning, before the work, when the broker says the stored chunks were altered. */
function warnIfAltered(answer: RecordingAnswer): void {
  if (answer.intact === false) warn(ALTERED_WARNING);
}

/** After the work: an altered recording makes the command fail, so that scripts notice. */
function failIfAltered(answer: RecordingAnswer): void {
  if (answer.intact === false)
    throw new CliError(
      'recording_altered',
      `the recording of session ${answer.session_id} does not match the digest the broker recorded`,
      EXIT.refused,
      '`tether audit verify` checks the audit chain; compare with an exported copy',
    );
}

function fetchRecording(session: Session, id: string): Promise<RecordingAnswer> {
  return session.call<RecordingAnswer>('GET', `/v1/sessions/${encodeURIComponent(id)}/recording`);
}

/** One line on stderr, before the output: what is being played and whether it is whole. */
function summary(answer: RecordingAnswer): string {
  const state = answer.complete ? 'complete' : 'incomplete: the recording ended before the session did';
  return `recording of session ${answer.session_id}: ${answer.chunks} chunks, ${answer.bytes} bytes, digest ${answer.digest}, ${state}`;
}

async function play(id: string, flags: PlayFlags, command: Command): Promise<void> {
  const session = new Session(command);
  const answer = await fetchRecording(session, id);
  warnIfAltered(answer);
  if (session.json) {
    printJson(answer);
    return failIfAltered(answer);
  }
  let recording: ReturnType<typeof parseCast>;
  try {
    recording = parseCast(answer.cast);
  } catch (err) {
    if (!isTetherError(err)) throw err;
    throw new CliError(
      'recording_invalid',
      `the recording is not valid asciicast v2: ${err.detail}`,
      EXIT.refused,
      '`tether recording export` writes it out as it is stored, for a closer look',
    );
  }
  warn(summary(answer));
  const steps = replaySchedule(recording.events, {
    speed: flags.speed ?? 1,
    idleLimit: idleLimit(flags.idleLimit, recording.header.idle_time_limit),
  });
  const { stdout, sleep } = io();
  // Every byte the recorded command wrote goes through the filter: it may attack this terminal.
  const stream = new SafeTerminalStream();
  try {
    if (flags.instant) {
      stdout.write(steps.map((s) => stream.write(s.data)).join('') + stream.end());
    } else {
      for (const step of steps) {
        if (step.delayMs > 0) await sleep(step.delayMs);
        const safe = stream.write(step.data);
        if (safe !== '') stdout.write(safe);
      }
      const rest = stream.end();
      if (rest !== '') stdout.write(rest);
    }
  } finally {
    // The replay may leave colours set or the cursor hidden; a terminal is handed back sane.
    if (stdout.isTTY) stdout.write(`${TERMINAL_RESTORE}\n`);
  }
  failIfAltered(answer);
}

/**
 * Characters a terminal acts on or that reorder text. Valid JSON has none of them raw but
 * C1, DEL and the bidi controls inside strings (and CR as whitespace); the broker's copy is
 * not taken on trust.
 */
const TERMINAL_UNSAFE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

async function exportRecording(id: string, flags: ExportFlags, command: Command): Promise<void> {
  const session = new Session(command);
  const answer = await fetchRecording(session, id);
  warnIfAltered(answer);
  if (session.json) {
    printJson(answer);
    return failIfAltered(answer);
  }
  if (flags.output === undefined) {
    const { stdout } = io();
    // Piped, the bytes are written as stored (they match the digest). On a terminal the
    // controls are escaped as JSON escapes: the same recording to a reader, inert on screen.
    stdout.write(
      stdout.isTTY
        ? answer.cast.replace(TERMINAL_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
        : answer.cast,
    );
    return failIfAltered(answer);
  }
  try {
    // The recording may show secrets typed or printed in the session: readable by its owner only.
    writeFileSync(flags.output, answer.cast, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new CliError(
        'file_exists',
        `${flags.output} already exists; it is not overwritten`,
        EXIT.usage,
        'choose another --output path, or remove the file first',
      );
    throw new CliError('cannot_write', (err as Error).message, EXIT.usage);
  }
  warn(summary(answer));
  warn(`wrote ${Buffer.byteLength(answer.cast)} bytes to ${flags.output}`);
  failIfAltered(answer);
}
