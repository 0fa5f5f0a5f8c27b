import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeIdentity } from '@tether-broker/client';
import type { CastEvent } from '@tether-broker/protocol';
import fc from 'fast-check';
import { exportJWK, generateKeyPair } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { replaySchedule, SafeTerminalStream, safeTerminalOutput } from './cast-player.js';
import { ALTERED_WARNING, idleLimit, type RecordingAnswer, TERMINAL_RESTORE } from './commands/recording.js';
import { EXIT } from './errors.js';
import { run } from './program.js';

const ESC = '\u001b';
const BEL = '\u0007';
const ST = `${ESC}\\`;

describe('safeTerminalOutput', () => {
  it('keeps text, newlines, carriage returns, tabs and backspaces', () => {
    const text = 'héllo wörld 日本 🎉\r\n\tcol\bx\n';
    expect(safeTerminalOutput(text)).toBe(text);
  });

  it('keeps colours and cursor movement', () => {
    const text = `${ESC}[1;31mred${ESC}[0m ${ESC}[38;2;10;20;30mrgb${ESC}[38:5:208m${ESC}[2J${ESC}[H${ESC}[10;5H${ESC}[K${ESC}[?25l${ESC}[?25h${ESC}[?7l${ESC}[?12;25h${ESC}[2 q`;
    expect(safeTerminalOutput(text)).toBe(text);
    const more = `${ESC}[3A${ESC}[2B${ESC}[C${ESC}[4D${ESC}[5G${ESC}[3d${ESC}[2L${ESC}[M${ESC}[3P${ESC}[4X${ESC}[2@${ESC}[S${ESC}[2T${ESC}[1;20r${ESC}[s${ESC}[u${ESC}[10000C`;
    expect(safeTerminalOutput(more)).toBe(more);
  });

  it('keeps ESC and one character from the allow-list, and charset designations', () => {
    const text = `${ESC}7${ESC}8${ESC}=${ESC}>${ESC}M${ESC}D${ESC}E${ESC}(B${ESC})0${ESC}(A`;
    expect(safeTerminalOutput(text)).toBe(text);
  });

  it('removes DECID (ESC Z), which answers, the full reset (ESC c), and other ESC finals', () => {
    for (const final of ['Z', 'c', 'H', 'N', 'O', 'n', 'o', '6', '9', 'F', 'l', 'm', '\\']) {
      expect(safeTerminalOutput(`a${ESC}${final}b`)).toBe('ab');
    }
    expect(safeTerminalOutput(`a${ESC}(%5b${ESC}#8c${ESC}%@d${ESC}(Ze`)).toBe('abcde');
  });

  it('removes a screen or tmux title string (ESC k), to ST, BEL or a newline', () => {
    expect(safeTerminalOutput(`a${ESC}kpwned${ST}b`)).toBe('ab');
    expect(safeTerminalOutput(`a${ESC}kpwned${BEL}b`)).toBe('ab');
    expect(safeTerminalOutput(`a${ESC}kpwned\nb`)).toBe('a\nb');
    const stream = new SafeTerminalStream();
    expect(stream.write(`a${ESC}`)).toBe('a');
    expect(stream.write('kti')).toBe('');
    expect(stream.write(`tle${ESC}`)).toBe('');
    expect(stream.write('\\b')).toBe('b');
  });

  it('removes an OSC 52 clipboard write, ended by BEL or by ST', () => {
    expect(safeTerminalOutput(`a${ESC}]52;c;cm0gLXJmIH4=${BEL}b`)).toBe('ab');
    expect(safeTerminalOutput(`a${ESC}]52;c;cm0gLXJmIH4=${ST}b`)).toBe('ab');
  });

  it('removes a window title and a hyperlink', () => {
    expect(safeTerminalOutput(`${ESC}]0;pwned${BEL}${ESC}]2;x${ST}prompt$ `)).toBe('prompt$ ');
    expect(safeTerminalOutput(`${ESC}]8;;https://evil.example/${ST}click${ESC}]8;;${ST}`)).toBe('click');
  });

  it('removes DCS, APC, PM and SOS strings', () => {
    for (const intro of ['P', '_', '^', 'X']) {
      expect(safeTerminalOutput(`a${ESC}${intro}payload${ST}b`)).toBe('ab');
    }
    expect(safeTerminalOutput(`a${ESC}P+q544e${ST}b`)).toBe('ab');
  });

  it('removes an unterminated string at the end, and ends one at a newline', () => {
    expect(safeTerminalOutput(`ok${ESC}]52;c;AAAA`)).toBe('ok');
    expect(safeTerminalOutput(`ok${ESC}]0;title\nvisible`)).toBe('ok\nvisible');
  });

  it('removes the 8-bit C1 forms: CSI, OSC, DCS, APC, PM, SOS and the rest', () => {
    expect(safeTerminalOutput('a\u009b2Jb')).toBe('ab');
    expect(safeTerminalOutput('a\u009b31mb')).toBe('ab');
    expect(safeTerminalOutput(`a\u009d52;c;AAAA${BEL}b`)).toBe('ab');
    expect(safeTerminalOutput('a\u009d0;t\u009cb')).toBe('ab');
    for (const intro of ['\u0090', '\u009f', '\u009e', '\u0098']) {
      expect(safeTerminalOutput(`a${intro}x\u009cb`)).toBe('ab');
    }
    expect(safeTerminalOutput('a\u0085\u008d\u009cb')).toBe('ab');
  });

  it('removes other C0 controls and DEL', () => {
    expect(safeTerminalOutput(`a${BEL}\u0000\u000e\u000f\u000b\u000c\u007fb`)).toBe('ab');
  });

  it('removes queries the terminal would answer on the auditor input, and window operations', () => {
    for (const query of ['6n', '5n', 'c', '>c', '0c', '21t', '8;1;1t', '14t', '?1$p', '>0q']) {
      expect(safeTerminalOutput(`a${ESC}[${query}b`)).toBe('ab');
    }
  });

  it('removes mouse and focus reporting modes, whole, with or without leading zeros', () => {
    expect(safeTerminalOutput(`a${ESC}[?1000hb${ESC}[?25;1006hc`)).toBe('abc');
    expect(safeTerminalOutput(`a${ESC}[?01000hb${ESC}[?0001006hc${ESC}[?00025;01004hd`)).toBe('abcd');
    // Compared as integers: leading zeros neither hide a mode nor lose an allowed one.
    expect(safeTerminalOutput(`${ESC}[?025l`)).toBe(`${ESC}[?025l`);
  });

  it('removes every DEC private mode outside the allow-list, set or reset', () => {
    for (const mode of [
      '1',
      '1049',
      '47',
      '1047',
      '1048',
      '9',
      '1000',
      '1001',
      '1002',
      '1003',
      '1004',
      '1005',
      '1006',
      '1015',
      '1016',
      '2004',
      '6',
      '5',
      '3',
      '66',
      '1036',
      '2026',
      '',
    ]) {
      expect(safeTerminalOutput(`a${ESC}[?${mode}hb`)).toBe('ab');
      expect(safeTerminalOutput(`a${ESC}[?${mode}lb`)).toBe('ab');
    }
    expect(safeTerminalOutput(`a${ESC}[?25;hb${ESC}[?25;2004lc`)).toBe('abc');
  });

  it('removes ANSI modes (h and l without ?): keyboard lock, insert, newline mode', () => {
    for (const mode of ['2', '4', '12', '20', '02', '4;20', '', '25']) {
      expect(safeTerminalOutput(`a${ESC}[${mode}hb`)).toBe('ab');
      expect(safeTerminalOutput(`a${ESC}[${mode}lb`)).toBe('ab');
    }
  });

  it('removes kitty keyboard queries and settings, and s or u with parameters', () => {
    for (const sequence of ['?u', '>1u', '<u', '=1;1u', '1u', '1;80s', '?s']) {
      expect(safeTerminalOutput(`a${ESC}[${sequence}b`)).toBe('ab');
    }
  });

  it('removes CSI finals outside the allow-list: repeat (b), tab clear (g) and the rest', () => {
    for (const sequence of [
      '1000000000b',
      '5b',
      'b',
      '3g',
      'g',
      '0i',
      '5i',
      'p',
      '!p',
      '1$x',
      '1 t',
      '2*x',
      '?J',
      '?2K',
      '1"q',
      'q',
      '0W',
    ]) {
      expect(safeTerminalOutput(`a${ESC}[${sequence}b`)).toBe('ab');
    }
  });

  it('removes a CSI with a numeric parameter above 10000, however written', () => {
    for (const sequence of [
      '10001C',
      '99999999999999999999A',
      '1;10001H',
      '38:5:10001m',
      '0000000000000010001L',
    ]) {
      expect(safeTerminalOutput(`a${ESC}[${sequence}b`)).toBe('ab');
    }
    expect(safeTerminalOutput(`${ESC}[00010000L`)).toBe(`${ESC}[00010000L`);
  });

  it('drops a CSI broken off by a control, CAN or SUB, and one too long', () => {
    expect(safeTerminalOutput(`a${ESC}[31\nb`)).toBe('a\nb');
    expect(safeTerminalOutput(`a${ESC}[31\u0018mb`)).toBe('amb');
    expect(safeTerminalOutput(`a${ESC}]52;c;AA\u001ab`)).toBe('ab');
    expect(safeTerminalOutput(`a${ESC}[${'1;'.repeat(100)}mb`)).toBe('ab');
  });

  it('never lets an unsafe sequence, a string or a disallowed control through, however split', () => {
    const alphabet = fc.constantFrom(
      ESC,
      '[',
      ']',
      'P',
      '_',
      '^',
      'X',
      'k',
      '\\',
      BEL,
      '\u009b',
      '\u009d',
      '\u009c',
      '\u0090',
      '\u0018',
      '\n',
      ';',
      ':',
      '?',
      '>',
      '(',
      ' ',
      '0',
      '1',
      '2',
      '5',
      'B',
      'Z',
      'b',
      'c',
      'g',
      'h',
      'l',
      'm',
      'q',
      'u',
      'a',
    );
    fc.assert(
      fc.property(
        fc.array(
          fc.array(alphabet, { maxLength: 20 }).map((a) => a.join('')),
          { maxLength: 8 },
        ),
        (pieces) => {
          const stream = new SafeTerminalStream();
          const out = pieces.map((p) => stream.write(p)).join('') + stream.end();
          // Every ESC starts a complete kept sequence: a CSI, ESC + one char of the allow-list,
          // or a charset designation.
          const rest = out.replace(
            // biome-ignore lint/suspicious/noControlCharactersInRegex: matching ESC is the point
            /\u001b(?:\[([0-?]*)([ -/]*)([@-~])|[()*+][0AB]|[78=>DEM])/g,
            (_all, params?: string, intermediates?: string, final?: string) => {
              if (final !== undefined) expect(isSafeCsi(params ?? '', intermediates ?? '', final)).toBe(true);
              return '';
            },
          );
          // biome-ignore lint/suspicious/noControlCharactersInRegex: matching controls is the point
          expect(rest).not.toMatch(/[\u0000-\u0007\u000b-\u000c\u000e-\u001f\u007f-\u009f]/);
          // The same text in one piece gives the same output: splitting changes nothing.
          expect(safeTerminalOutput(pieces.join(''))).toBe(out);
        },
      ),
    );
  });
});

/**
 * The test's own statement of a CSI sequence the auditor's terminal may see: a final from the
 * allow-list, numbers up to 10000, DEC private modes 7, 12 and 25 only, no ANSI modes, no
 * private markers elsewhere, `s` and `u` bare, SP only before `q`.
 */
function isSafeCsi(params: string, intermediates: string, final: string): boolean {
  if (intermediates !== (final === 'q' ? ' ' : '')) return false;
  if (final === 'h' || final === 'l') {
    const match = /^\?([0-9;]+)$/.exec(params);
    return (
      !!match && (match[1] as string).split(';').every((m) => m !== '' && [7, 12, 25].includes(Number(m)))
    );
  }
  if (!'@ABCDEFGHIJKLMPSTXZ`adefmqrsu'.includes(final)) return false;
  if ((final === 's' || final === 'u') && params !== '') return false;
  if (!(final === 'm' ? /^[0-9;:]*$/ : /^[0-9;]*$/).test(params)) return false;
  return params.split(/[;:]/).every((p) => p === '' || Number(p) <= 10_000);
}

describe('SafeTerminalStream', () => {
  it('removes an OSC split across two writes', () => {
    const stream = new SafeTerminalStream();
    expect(stream.write(`one${ESC}]52;c;`)).toBe('one');
    expect(stream.write(`AAAA${BEL}two`)).toBe('two');
    expect(stream.end()).toBe('');
  });

  it('removes an OSC whose ESC ends one write and whose ST is split too', () => {
    const stream = new SafeTerminalStream();
    expect(stream.write(`one${ESC}`)).toBe('one');
    expect(stream.write(']0;title')).toBe('');
    expect(stream.write(ESC)).toBe('');
    expect(stream.write('\\two')).toBe('two');
  });

  it('holds a colour split across writes until it is whole', () => {
    const stream = new SafeTerminalStream();
    expect(stream.write(`a${ESC}[1;3`)).toBe('a');
    expect(stream.write('2mb')).toBe(`${ESC}[1;32mb`);
  });

  it('drops a sequence still open at the end', () => {
    const stream = new SafeTerminalStream();
    expect(stream.write(`a${ESC}[1;3`)).toBe('a');
    expect(stream.end()).toBe('');
  });

  it('writes a surrogate pair split across writes whole', () => {
    const stream = new SafeTerminalStream();
    expect(stream.write('x\ud83c')).toBe('x');
    expect(stream.write('\udf89y')).toBe('🎉y');
  });

  it('drops a long run of intermediates after ESC without collecting it', () => {
    expect(safeTerminalOutput(`a${ESC}${' '.repeat(10_000)}Fb`)).toBe('ab');
    expect(safeTerminalOutput(`a${ESC}((Bb`)).toBe('ab');
  });
});

describe('replaySchedule', () => {
  const events: CastEvent[] = [
    [0.5, 'o', 'a'],
    [1, 'i', 'x'],
    [1.5, 'o', 'b'],
    [1.5, 'r', '80x24'],
    [11.5, 'o', 'c'],
    [11.75, 'm', 'mark'],
    [12, 'o', 'd'],
  ];

  it('waits the recorded time between output events, skipping the others', () => {
    expect(replaySchedule(events, { speed: 1, idleLimit: Number.POSITIVE_INFINITY })).toEqual([
      { delayMs: 500, data: 'a' },
      { delayMs: 1000, data: 'b' },
      { delayMs: 10_000, data: 'c' },
      { delayMs: 500, data: 'd' },
    ]);
  });

  it('caps pauses at the idle limit, then divides by the speed', () => {
    expect(replaySchedule(events, { speed: 2, idleLimit: 2 })).toEqual([
      { delayMs: 250, data: 'a' },
      { delayMs: 500, data: 'b' },
      { delayMs: 1000, data: 'c' },
      { delayMs: 250, data: 'd' },
    ]);
    expect(replaySchedule(events, { speed: 0.5, idleLimit: 0.25 }).map((s) => s.delayMs)).toEqual([
      500, 500, 500, 500,
    ]);
  });

  it('answers nothing for a recording without output', () => {
    expect(replaySchedule([], { speed: 1, idleLimit: 2 })).toEqual([]);
    expect(replaySchedule([[1, 'r', '80x24']], { speed: 1, idleLimit: 2 })).toEqual([]);
  });
});

describe('tether recording, against a fake broker', () => {
  const cast = `{"version":2,"width":80,"height":24}\n[0.5,"o","$ ls\\r\\n"]\n[9.5,"o","\\u001b]52;c;cm0gLXJm\\u0007\\u001b[32mok\\u001b[0m\\r\\n"]\n`;
  const original: RecordingAnswer = {
    session_id: 'ses/1',
    mode: 'output',
    chunks: 2,
    bytes: cast.length,
    digest: 'ab'.repeat(32),
    complete: false,
    cast,
  };
  /** What the fake broker serves: `original` unless a test changes it. */
  let answer: RecordingAnswer;
  let home: string;
  let paths: string[];

  beforeEach(async () => {
    home = mkdtempSync(join(tmpdir(), 'tether-recording-'));
    paths = [];
    answer = original;
    const { privateKey } = await generateKeyPair('EdDSA', { extractable: true });
    writeIdentity(join(home, 'identity.json'), {
      broker: 'http://broker.test',
      tenant: 'ten_1',
      principal: 'prn_1',
      key: { ...(await exportJWK(privateKey)), kid: 'k1' },
    } as Parameters<typeof writeIdentity>[1]);
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  async function tether(...args: string[]) {
    return tetherOn(false, ...args);
  }

  async function tetherOn(isTTY: boolean, ...args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const sleeps: number[] = [];
    const code = await run(['node', 'tether', ...args], {
      env: { TETHER_HOME: home },
      stdout: { write: (c) => out.push(String(c)), isTTY },
      stderr: { write: (c) => err.push(String(c)) },
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      fetch: async (input) => {
        const url = new URL(String(input));
        if (url.pathname === '/oauth/token') return Response.json({ access_token: 'at', expires_in: 300 });
        paths.push(url.pathname);
        return Response.json(answer);
      },
    });
    return { code, stdout: out.join(''), stderr: err.join(''), sleeps };
  }

  it('plays the output, filtered, with its timing, after a summary on stderr', async () => {
    const played = await tether('recording', 'play', 'ses/1', '--speed', '2');
    expect(played.code).toBe(EXIT.ok);
    expect(paths).toEqual(['/v1/sessions/ses%2F1/recording']);
    expect(played.stdout).toBe('$ ls\r\n\u001b[32mok\u001b[0m\r\n');
    expect(played.sleeps).toEqual([250, 1000]);
    expect(played.stderr).toMatch(
      /^recording of session ses\/1: 2 chunks, .* digest (ab){32}, incomplete: the recording ended before the session did\n$/,
    );
  });

  it('plays at once with --instant, and refuses a speed of 0', async () => {
    const played = await tether('recording', 'play', 'ses_1', '--instant');
    expect(played.sleeps).toEqual([]);
    expect(played.stdout).toBe('$ ls\r\n\u001b[32mok\u001b[0m\r\n');
    expect((await tether('recording', 'play', 'ses_1', '--speed', '0')).code).toBe(EXIT.usage);
  });

  it('exports the raw text to a new file of mode 0600, and never overwrites one', async () => {
    const file = join(home, 'session.cast');
    expect((await tether('recording', 'export', 'ses_1', '--output', file)).code).toBe(EXIT.ok);
    expect(readFileSync(file, 'utf8')).toBe(cast);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const existing = join(home, 'existing.cast');
    writeFileSync(existing, 'mine');
    const refused = await tether('recording', 'export', 'ses_1', '--output', existing);
    expect(refused.code).toBe(EXIT.usage);
    expect(refused.stderr).toContain('error file_exists');
    expect(readFileSync(existing, 'utf8')).toBe('mine');
  });

  it('exports to stdout as stored, or the whole answer with --json', async () => {
    expect((await tether('recording', 'export', 'ses_1')).stdout).toBe(cast);
    expect(JSON.parse((await tether('--json', 'recording', 'export', 'ses_1')).stdout)).toEqual(answer);
  });

  it('hands a terminal back sane after the replay: attributes, cursor, modes the filter drops', async () => {
    const played = await tetherOn(true, 'recording', 'play', 'ses_1', '--instant');
    expect(played.stdout).toBe(`$ ls\r\n\u001b[32mok\u001b[0m\r\n${TERMINAL_RESTORE}\n`);
    for (const reset of ['[0m', '[?25h', '[?1049l', '[4l', '[20l', '[?1l', '[?2004l', '[?1000l', '[?1006l']) {
      expect(TERMINAL_RESTORE).toContain(`${ESC}${reset}`);
    }
  });

  it('removes what the recorded command emitted to make the terminal answer or stay changed', async () => {
    const attack = `${ESC}[?01000h${ESC}[?1049h${ESC}[2h${ESC}[4h${ESC}[20h${ESC}Z${ESC}ktitle${ST}${ESC}[?u${ESC}[1000000b${ESC}c${ESC}[99999Aok\r\n`;
    const hostile = `{"version":2,"width":80,"height":24}\n${JSON.stringify([0.1, 'o', attack])}\n`;
    answer = { ...original, cast: hostile };
    const played = await tetherOn(true, 'recording', 'play', 'ses_1', '--instant');
    expect(played.stdout).toBe(`ok\r\n${TERMINAL_RESTORE}\n`);
  });

  it("lowers the idle limit to the recording's own, and never raises it", async () => {
    const header = (limit: number) => `{"version":2,"width":80,"height":24,"idle_time_limit":${limit}}`;
    const events = '[0.5,"o","a"]\n[100.5,"o","b"]\n';
    answer = { ...original, cast: `${header(3600)}\n${events}` };
    expect((await tether('recording', 'play', 'ses_1')).sleeps).toEqual([500, 2000]);
    expect((await tether('recording', 'play', 'ses_1', '--idle-limit', '5')).sleeps).toEqual([500, 5000]);
    answer = { ...original, cast: `${header(0.25)}\n${events}` };
    expect((await tether('recording', 'play', 'ses_1')).sleeps).toEqual([250, 250]);
    expect(idleLimit(undefined, undefined)).toBe(2);
    expect(idleLimit(10, 1e9)).toBe(10);
    expect(idleLimit(10, 1)).toBe(1);
    expect(idleLimit(undefined, Number.POSITIVE_INFINITY)).toBe(2);
  });

  describe('when the broker says the stored chunks were altered (intact: false)', () => {
    beforeEach(() => {
      answer = { ...original, intact: false };
    });

    it('warns before playing, plays, and exits 1', async () => {
      const played = await tether('recording', 'play', 'ses_1', '--instant');
      expect(played.stdout).toBe('$ ls\r\n\u001b[32mok\u001b[0m\r\n');
      expect(played.stderr.split('\n')[0]).toBe(ALTERED_WARNING);
      expect(played.stderr).toContain('error recording_altered');
      expect(played.code).toBe(EXIT.refused);
    });

    it('warns before exporting, exports, and exits 1, to a file, to stdout or as JSON', async () => {
      const file = join(home, 'altered.cast');
      const exported = await tether('recording', 'export', 'ses_1', '--output', file);
      expect(readFileSync(file, 'utf8')).toBe(cast);
      expect(exported.stderr.split('\n')[0]).toBe(ALTERED_WARNING);
      expect(exported.code).toBe(EXIT.refused);
      const piped = await tether('recording', 'export', 'ses_1');
      expect(piped.stdout).toBe(cast);
      expect(piped.stderr.split('\n')[0]).toBe(ALTERED_WARNING);
      expect(piped.code).toBe(EXIT.refused);
      const json = await tether('--json', 'recording', 'export', 'ses_1');
      expect(JSON.parse(json.stdout)).toEqual(answer);
      expect(json.stderr.split('\n')[0]).toBe(ALTERED_WARNING);
      expect(json.code).toBe(EXIT.refused);
    });

    it('says nothing of the kind when intact is true', async () => {
      answer = { ...original, intact: true };
      const played = await tether('recording', 'play', 'ses_1', '--instant');
      expect(played.code).toBe(EXIT.ok);
      expect(played.stderr).not.toContain('WARNING');
    });
  });
});
