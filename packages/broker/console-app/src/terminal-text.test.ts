import { describe, expect, it } from 'vitest';
import { pieceStripper, stripTerminal } from './terminal-text.js';

describe('terminal output as text', () => {
  it('removes CSI, OSC (BEL or ST ended) and other escapes, and control characters but newline and tab', () => {
    expect(stripTerminal('\u001b[1;31mred\u001b[0m')).toBe('red');
    expect(stripTerminal('\u001b]0;title\u0007a\u001b]8;;http://x\u001b\\b')).toBe('ab');
    expect(stripTerminal('\u001bMup\u001b7')).toBe('up7');
    expect(stripTerminal('a\r\n\tb\u0000\u0008\u007f\u009bc')).toBe('a\n\tbc');
  });

  it('leaves markup as the text it is (the view never parses it)', () => {
    expect(stripTerminal('<img src=x onerror=alert(1)>')).toBe('<img src=x onerror=alert(1)>');
  });

  it('holds a sequence cut between pieces until it completes', () => {
    const strip = pieceStripper();
    expect(strip.next('a\u001b')).toBe('a');
    expect(strip.next('[38;5;')).toBe('');
    expect(strip.next('200mb')).toBe('b');
    expect(strip.end()).toBe('');
  });

  it('shows what an unfinished sequence leaves, at the end or once it is too long to be one', () => {
    const strip = pieceStripper();
    expect(strip.next('x\u001b[12')).toBe('x');
    expect(strip.end()).toBe(stripTerminal('\u001b[12'));
    const long = pieceStripper();
    expect(long.next(`\u001b]${'t'.repeat(300)}`)).toBe('t'.repeat(300));
  });
});
