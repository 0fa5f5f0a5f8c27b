/**
 * Playing a recorded session back to an auditor's terminal.
 *
 * The recorded output was produced by the session holder's command, so it is hostile input
 * to the auditor's terminal: an OSC 52 string writes the auditor's clipboard, an OSC 8 string
 * hides a link, a DCS string talks to the terminal itself, a device-status query makes the
 * terminal type an answer into the auditor's shell. What reaches the terminal is therefore
 * only printable text, newline, carriage return, tab, backspace, and the escape sequences a
 * replay needs to look right: colours, cursor movement, erasing, scrolling. Everything is
 * judged against allow-lists: a sequence not known to be harmless is dropped, so that nothing
 * makes the terminal answer back or outlive the replay in a state the auditor did not choose.
 */
import type { CastEvent } from '@tether-broker/protocol';

/** Default cap on a pause, in seconds, as asciinema's `--idle-time-limit`. */
export const DEFAULT_IDLE_LIMIT = 2;

/** Longest CSI sequence kept; a longer one is no colour or cursor move, and is dropped. */
const MAX_CSI = 64;
/** Largest numeric CSI parameter kept: no screen has more rows or columns (a larger count is a stall). */
const MAX_PARAMETER = 10_000;

const ESC = 0x1b;
/** CAN and SUB abort any sequence in progress (ECMA-48, and every VT-style parser). */
const CAN = 0x18;
const SUB = 0x1a;
/** C0 controls passed through: backspace, tab, newline, carriage return. */
const KEPT_C0 = new Set([0x08, 0x09, 0x0a, 0x0d]);
/**
 * `ESC ]` OSC, `ESC P` DCS, `ESC _` APC, `ESC ^` PM, `ESC X` SOS, and `ESC k` (screen's and
 * tmux's title string): strings up to BEL or ST.
 */
const STRING_INTRODUCERS = new Set([']', 'P', '_', '^', 'X', 'k']);
/** Their 8-bit forms: DCS, SOS, OSC, PM, APC. */
const C1_STRING_INTRODUCERS = new Set([0x90, 0x98, 0x9d, 0x9e, 0x9f]);
const C1_CSI = 0x9b;

/**
 * ESC and one final byte, kept: save and restore the cursor (`7 8`), keypad modes (`= >`),
 * index, reverse index and next line (`D M E`). Left out on purpose: `Z` (DECID: the
 * terminal answers), `c` (full reset: clears the auditor's scrollback), `H` (tab set),
 * `N O n o` (charset shifts), and the rest.
 */
const ESC_FINALS = new Set('78=>DEM'.split(''));
/** `ESC ( B` and the like: G0–G3 as ASCII (`B`), DEC line drawing (`0`) or UK (`A`). */
const CHARSET_INTERMEDIATES = '()*+';
const CHARSET_FINALS = '0AB';

/**
 * CSI final bytes kept: cursor movement and position (`@ A–H I Z \` a d e f`), erasing and
 * inserting (`J K L M P X`), scrolling (`S T r`), colours and attributes (`m`), save and
 * restore the cursor (`s u`, without parameters), cursor style (`SP q`), and the DEC private
 * modes of {@link PRIVATE_MODES} (`? h`, `? l`). Left out on purpose: `n` and `c` (the
 * terminal answers on the auditor's input), `t` (window moves, resizes and title reports),
 * `p`, `x`, `y`, `|` (requests and tests), `b` (repeats a character any number of times),
 * `g` (clears tab stops, which outlive the replay), ANSI modes (`h l` without `?`: keyboard
 * lock, insert, newline mode).
 */
const CSI_FINALS = new Set('@ABCDEFGHIJKLMPSTXZ`adefhlmqrsu'.split(''));
/**
 * DEC private modes a replay may set or reset: cursor visibility (25), autowrap (7), cursor
 * blink (12). Every other one is dropped: the alternate screen (1049, 47, 1047), mouse and
 * focus reporting (9, 1000–1006, 1015, 1016), bracketed paste (2004), application cursor keys
 * (1), and the rest, which would change what the auditor's keys and mouse send after the replay.
 */
const PRIVATE_MODES = new Set([7, 12, 25]);

type State =
  /** Text. */
  | 'ground'
  /** After ESC. */
  | 'escape'
  /** After ESC and an intermediate byte (0x20–0x2F), e.g. `ESC (` before a charset. */
  | 'escape-intermediate'
  /** In a CSI sequence, collected in `#pending`. */
  | 'csi'
  /** In a CSI sequence already judged unsafe or too long: consumed to its final byte. */
  | 'csi-drop'
  /** In an OSC, DCS, APC, PM or SOS string: consumed to its terminator. */
  | 'string'
  /** After ESC inside such a string: `\` ends it (ST). */
  | 'string-escape';

/** Whether every `;`- (and, in `m`, `:`-) separated parameter is empty or a number kept. */
function parametersAllowed(params: string, final: string): boolean {
  const pattern = final === 'm' ? /^[0-9;:]*$/ : /^[0-9;]*$/;
  if (!pattern.test(params)) return false;
  // Compared as integers: `0001000` is 1000, and a run of digits is no way around the cap.
  return params.split(/[;:]/).every((p) => p === '' || Number(p) <= MAX_PARAMETER);
}

/** Whether a complete CSI sequence (`ESC [` … final) is one a replay may send. */
function csiAllowed(sequence: string): boolean {
  // Parameters 0x30–0x3F, then intermediates 0x20–0x2F, then the final byte.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching ESC is the point
  const match = /^\u001b\[([0-?]*)([ -/]*)([@-~])$/.exec(sequence);
  if (!match) return false;
  const [, params = '', intermediates = '', final = ''] = match;
  if (!CSI_FINALS.has(final)) return false;
  // The only intermediate kept is SP before q (cursor style), and q is kept only with it.
  if ((intermediates !== '' || final === 'q') && !(intermediates === ' ' && final === 'q')) return false;
  if (final === 'h' || final === 'l') {
    // DEC private modes from the allow-list only; ANSI modes (no `?`) never.
    if (!params.startsWith('?')) return false;
    const modes = params.slice(1).split(';');
    return modes.every((mode) => /^[0-9]+$/.test(mode) && PRIVATE_MODES.has(Number(mode)));
  }
  // Save and restore the cursor; with parameters, `s` sets margins and `u` is a kitty key query.
  if ((final === 's' || final === 'u') && params !== '') return false;
  // No private marker (`< = > ?`: xterm and kitty extensions, queries) on anything else.
  return parametersAllowed(params, final);
}

/**
 * Makes a stream of terminal output safe, one piece at a time: an escape sequence split
 * between two pieces (two recorded events) is judged whole, from the state carried over.
 * Strings (OSC, DCS, APC, PM, SOS, `ESC k`) are removed with their content, to BEL or ST; one still
 * open at a newline ends there, so that an unterminated string cannot hide the rest of the
 * recording from the auditor.
 */
export class SafeTerminalStream {
  #state: State = 'ground';
  /** The CSI sequence being collected. */
  #pending = '';
  /** A high surrogate that ended the last piece: written with its low half. */
  #highSurrogate = '';

  /** The safe part of `data`; what may belong to a sequence not yet ended is held back. */
  write(data: string): string {
    let out = '';
    const text = this.#highSurrogate + data;
    this.#highSurrogate = '';
    for (let i = 0; i < text.length; i++) {
      const char = text[i] as string;
      const code = char.charCodeAt(0);
      if (code === CAN || code === SUB) {
        // Aborts whatever sequence is open; shown as nothing.
        this.#reset();
        continue;
      }
      switch (this.#state) {
        case 'ground':
          out += this.#ground(char, code);
          break;
        case 'escape':
          out += this.#escape(char, code);
          break;
        case 'escape-intermediate':
          // A charset designation (`ESC ( B`, which ncurses writes often) is kept; others are
          // dropped. Only one intermediate is ever kept, so a longer run is not collected.
          if (code >= 0x30 && code <= 0x7e) {
            if (
              this.#pending.length === 2 &&
              CHARSET_INTERMEDIATES.includes(this.#pending[1] as string) &&
              CHARSET_FINALS.includes(char)
            )
              out += this.#pending + char;
            this.#reset();
          } else if (code < 0x20 || code > 0x2f) {
            this.#reset();
            out += this.#ground(char, code);
          } else if (this.#pending.length < 3) this.#pending += char;
          break;
        case 'csi':
        case 'csi-drop':
          out += this.#csi(char, code);
          break;
        case 'string':
          if (code === 0x07 || code === 0x9c) this.#reset();
          else if (code === ESC) this.#state = 'string-escape';
          else if (code === 0x0a) {
            this.#reset();
            out += char;
          }
          break;
        case 'string-escape':
          // ESC \ is ST; ESC and anything else ends the string and starts a new sequence.
          this.#reset();
          if (char !== '\\') out += this.#escape(char, code);
          break;
      }
    }
    // A surrogate pair split between two pieces is written whole, not as two U+FFFD. Only
    // from text: the character is read again, and must be read in the state it was read in.
    const last = out.charCodeAt(out.length - 1);
    if (this.#state === 'ground' && last >= 0xd800 && last <= 0xdbff) {
      this.#highSurrogate = out.slice(-1);
      out = out.slice(0, -1);
    }
    return out;
  }

  /** The end of the stream: a sequence still open is dropped. */
  end(): string {
    const rest = this.#highSurrogate;
    this.#highSurrogate = '';
    this.#reset();
    return rest;
  }

  #reset(): void {
    this.#state = 'ground';
    this.#pending = '';
  }

  #ground(char: string, code: number): string {
    if (code === ESC) {
      this.#state = 'escape';
      this.#pending = char;
      return '';
    }
    if (code === C1_CSI) {
      // The 8-bit CSI is consumed like the 7-bit one, and never sent.
      this.#state = 'csi-drop';
      return '';
    }
    if (C1_STRING_INTRODUCERS.has(code)) {
      this.#state = 'string';
      return '';
    }
    if (code < 0x20) return KEPT_C0.has(code) ? char : '';
    // DEL and the other C1 controls.
    if (code >= 0x7f && code <= 0x9f) return '';
    return char;
  }

  #escape(char: string, code: number): string {
    if (char === '[') {
      this.#state = 'csi';
      this.#pending = '\u001b[';
      return '';
    }
    if (STRING_INTRODUCERS.has(char)) {
      this.#state = 'string';
      this.#pending = '';
      return '';
    }
    if (code >= 0x20 && code <= 0x2f) {
      this.#state = 'escape-intermediate';
      this.#pending = `\u001b${char}`;
      return '';
    }
    this.#reset();
    // ESC and one character from the allow-list (ESC 7, ESC 8, ESC =, ESC M, …) is kept; the
    // others are dropped whole.
    if (code >= 0x30 && code <= 0x7e) return ESC_FINALS.has(char) ? `\u001b${char}` : '';
    // ESC before a control or a non-ASCII character is no sequence: the ESC is dropped.
    return this.#ground(char, code);
  }

  #csi(char: string, code: number): string {
    if (code >= 0x40 && code <= 0x7e) {
      const sequence = this.#pending + char;
      const keep = this.#state === 'csi' && csiAllowed(sequence);
      this.#reset();
      return keep ? sequence : '';
    }
    if (code >= 0x20 && code <= 0x3f) {
      if (this.#state === 'csi') {
        this.#pending += char;
        if (this.#pending.length > MAX_CSI) {
          this.#state = 'csi-drop';
          this.#pending = '';
        }
      }
      return '';
    }
    // Anything else breaks the sequence off: it is dropped and the character read afresh.
    this.#reset();
    return this.#ground(char, code);
  }
}

/** `data` made safe for a terminal, as a whole: an escape sequence left open at its end is dropped. */
export function safeTerminalOutput(data: string): string {
  const stream = new SafeTerminalStream();
  return stream.write(data) + stream.end();
}

export interface ReplayOptions {
  /** Playback speed: 2 plays twice as fast. */
  speed: number;
  /** Longest pause, in recorded seconds; longer ones are cut to this. */
  idleLimit: number;
}

/** One write of a replay: wait `delayMs`, then write `data` (the raw recorded output). */
export interface ReplayStep {
  delayMs: number;
  data: string;
}

/**
 * When to write each output (`o`) event: the pause before it is the time since the previous
 * output event, capped at `idleLimit` recorded seconds, then divided by `speed`. Input,
 * resize and marker events take no time of their own.
 */
export function replaySchedule(events: readonly CastEvent[], options: ReplayOptions): ReplayStep[] {
  const steps: ReplayStep[] = [];
  let previous = 0;
  for (const [time, code, data] of events) {
    if (code !== 'o') continue;
    const pause = Math.min(Math.max(time - previous, 0), options.idleLimit);
    steps.push({ delayMs: Math.round((pause / options.speed) * 1000), data });
    previous = time;
  }
  return steps;
}
