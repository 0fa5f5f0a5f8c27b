// biome-ignore-all lint/suspicious/noControlCharactersInRegex: control characters are what these regexes remove
/**
 * Terminal output as plain text: control sequences removed, never interpreted. Whatever a
 * recorded session printed reaches the page as text (the views put it in a text node), so a
 * sequence that survived would only show as noise, never act; these remove the noise.
 */

/** CSI, OSC (ended by BEL or ST) and other escapes, then any control character but newline and tab. */
export function stripTerminal(text: string): string {
  return text
    .replace(/\u001b\[[0-?]*[ -/]*[@-~]/g, '')
    .replace(/\u001b\][^\u0007\u001b]*(\u0007|\u001b\\)/g, '')
    .replace(/\u001b[@-_]/g, '')
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '');
}

/**
 * An escape sequence still open at the end of some output: an ESC alone, a CSI without its
 * final byte, an OSC without its terminator. The next event of the recording completes it.
 */
const OPEN_SEQUENCE = /\u001b(?:\[[0-?]*[ -/]*|\][^\u0007\u001b]*\u001b?)?$/;

/** Longer than this, an "open" sequence is taken as garbage and shown stripped, not held back. */
const MAX_HELD = 256;

/**
 * Strips output that arrives in pieces (the events of a recording): a sequence cut between two
 * events is held back until it completes, so the pieces put together read as `stripTerminal`
 * of the whole.
 *
 * @example
 * const strip = pieceStripper();
 * strip.next('\u001b[3') + strip.next('1mred') + strip.end(); // 'red'
 */
export function pieceStripper(): { next(piece: string): string; end(): string } {
  let held = '';
  return {
    next(piece) {
      const text = held + piece;
      const open = OPEN_SEQUENCE.exec(text);
      if (open && text.length - open.index <= MAX_HELD) {
        held = text.slice(open.index);
        return stripTerminal(text.slice(0, open.index));
      }
      held = '';
      return stripTerminal(text);
    },
    end() {
      const rest = stripTerminal(held);
      held = '';
      return rest;
    },
  };
}
