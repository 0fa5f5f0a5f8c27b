import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CAST_LIMITS,
  type CastEvent,
  type CastHeader,
  checkCastChunk,
  formatCastEvent,
  formatCastHeader,
  parseCast,
} from './asciicast.js';
import { TetherError } from './errors.js';

const FIRST = { first: true, allowInput: false, lastTime: 0 };
const NEXT = { first: false, allowInput: false, lastTime: 0 };
const HEADER = '{"version":2,"width":80,"height":24}\n';

/** The TetherError `check` throws, to assert its code and message. */
function refusal(check: () => unknown): TetherError {
  try {
    check();
  } catch (err) {
    expect(err).toBeInstanceOf(TetherError);
    expect((err as TetherError).code).toBe('invalid_request');
    return err as TetherError;
  }
  throw new Error('expected a refusal');
}

describe('checkCastChunk', () => {
  it('accepts a header and events, and answers their count and the last time', () => {
    const text = `{"version":2,"width":80,"height":24,"timestamp":1700000000,"idle_time_limit":2,"title":"t","env":{"TERM":"xterm-256color","SHELL":"/bin/bash"}}\n[0.1,"o","hello"]\n[0.2,"r","100x40"]\n[0.2,"m","mark"]\n`;
    expect(checkCastChunk(text, FIRST)).toEqual({ events: 3, lastTime: 0.2 });
  });

  it('accepts an empty chunk after the first as a heartbeat, and keeps the time', () => {
    expect(checkCastChunk('', { ...NEXT, lastTime: 4.5 })).toEqual({ events: 0, lastTime: 4.5 });
    expect(refusal(() => checkCastChunk('', FIRST)).detail).toMatch(/line 1: .*header/);
  });

  it('refuses a last line without its newline', () => {
    expect(refusal(() => checkCastChunk(`${HEADER}[1,"o","x"]`, FIRST)).detail).toMatch(/line 2: .*newline/);
    expect(refusal(() => checkCastChunk('[1,"o","x"]', NEXT)).detail).toMatch(/line 1: .*newline/);
  });

  it('refuses empty and non-JSON lines', () => {
    expect(refusal(() => checkCastChunk('[1,"o","x"]\n\n', NEXT)).detail).toMatch(/line 2: .*JSON/);
    expect(refusal(() => checkCastChunk('[1,"o",\n', NEXT)).detail).toMatch(/line 1: .*JSON/);
  });

  it('refuses a chunk that should start with the header and does not', () => {
    expect(refusal(() => checkCastChunk('[1,"o","x"]\n', FIRST)).detail).toMatch(/line 1: .*header/);
  });

  it('refuses a header anywhere but first', () => {
    expect(refusal(() => checkCastChunk(`${HEADER}${HEADER}`, FIRST)).detail).toMatch(
      /line 2: a header is allowed only/,
    );
    expect(refusal(() => checkCastChunk(`[1,"o","x"]\n${HEADER}`, NEXT)).detail).toMatch(/line 2/);
    expect(refusal(() => checkCastChunk(HEADER, NEXT)).detail).toMatch(/line 1/);
  });

  it.each([
    ['version 1', '{"version":1,"width":80,"height":24}', /version/],
    ['a string version', '{"version":"2","width":80,"height":24}', /version/],
    ['no width', '{"version":2,"height":24}', /width/],
    ['width 0', '{"version":2,"width":0,"height":24}', /width/],
    ['a fractional width', '{"version":2,"width":80.5,"height":24}', /width/],
    ['too high', '{"version":2,"width":80,"height":1001}', /height/],
    ['a negative timestamp', '{"version":2,"width":80,"height":24,"timestamp":-1}', /timestamp/],
    ['a fractional timestamp', '{"version":2,"width":80,"height":24,"timestamp":1.5}', /timestamp/],
    ['a zero idle limit', '{"version":2,"width":80,"height":24,"idle_time_limit":0}', /idle_time_limit/],
    ['a number title', '{"version":2,"width":80,"height":24,"title":7}', /title/],
    ['a long title', `{"version":2,"width":80,"height":24,"title":"${'t'.repeat(257)}"}`, /title/],
    ['an array env', '{"version":2,"width":80,"height":24,"env":["TERM"]}', /env/],
    ['a number in env', '{"version":2,"width":80,"height":24,"env":{"COLUMNS":80}}', /env/],
    ['an unknown field', '{"version":2,"width":80,"height":24,"command":"sh"}', /unknown field "command"/],
  ])('refuses a header with %s', (_name, line, message) => {
    expect(refusal(() => checkCastChunk(`${line}\n`, FIRST)).detail).toMatch(message);
  });

  it('refuses an env with too many entries', () => {
    const env = Object.fromEntries(
      Array.from({ length: CAST_LIMITS.maxEnvEntries + 1 }, (_, i) => [`K${i}`, 'v']),
    );
    const line = JSON.stringify({ version: 2, width: 80, height: 24, env });
    expect(refusal(() => checkCastChunk(`${line}\n`, FIRST)).detail).toMatch(/more than 32 entries/);
  });

  it('refuses time going backwards within a chunk and across chunks', () => {
    expect(refusal(() => checkCastChunk('[2,"o","a"]\n[1,"o","b"]\n', NEXT)).detail).toMatch(
      /line 2: .*before the previous/,
    );
    const first = checkCastChunk(`${HEADER}[1,"o","a"]\n[3,"o","b"]\n`, FIRST);
    expect(first.lastTime).toBe(3);
    const carried = { first: false, allowInput: false, lastTime: first.lastTime };
    expect(checkCastChunk('[3,"o","c"]\n', carried)).toEqual({ events: 1, lastTime: 3 });
    expect(refusal(() => checkCastChunk('[2.999,"o","c"]\n', carried)).detail).toMatch(/line 1: .*before/);
  });

  it('refuses input events unless the privilege records input', () => {
    expect(refusal(() => checkCastChunk('[1,"i","ls\\r"]\n', NEXT)).detail).toMatch(
      /line 1: .*records output only/,
    );
    expect(checkCastChunk('[1,"i","ls\\r"]\n', { ...NEXT, allowInput: true })).toEqual({
      events: 1,
      lastTime: 1,
    });
  });

  it.each(['80', '0x24', '80x0', '80x24 ', '12345x24', '80X24', '-80x24', ''])(
    'refuses the resize %j',
    (size) => {
      expect(refusal(() => checkCastChunk(`[1,"r",${JSON.stringify(size)}]\n`, NEXT)).detail).toMatch(
        /line 1: .*resize/,
      );
    },
  );

  it('accepts a line of exactly the limit in bytes, and refuses one byte more', () => {
    // A two-byte character, so bytes and not characters are counted.
    const wrap = (n: number) => `[1,"o","${'é'.repeat(n)}"]`;
    const overhead = wrap(0).length;
    const fits = `${wrap((CAST_LIMITS.maxLineBytes - overhead) / 2)}\n`;
    expect(checkCastChunk(fits, NEXT).events).toBe(1);
    const over = `[1,"o","${'é'.repeat((CAST_LIMITS.maxLineBytes - overhead) / 2)}x"]\n`;
    expect(refusal(() => checkCastChunk(over, NEXT)).detail).toMatch(/line 1: .*longer than 65536 bytes/);
  });

  it.each([
    ['an object', '{"t":1}', /header is allowed only/],
    ['a number', '1', /array of exactly 3/],
    ['a string', '"o"', /array of exactly 3/],
    ['null', 'null', /array of exactly 3/],
    ['two elements', '[1,"o"]', /array of exactly 3/],
    ['four elements', '[1,"o","x","y"]', /array of exactly 3/],
    ['a string time', '["1","o","x"]', /time/],
    ['a "NaN" time', '["NaN","o","x"]', /time/],
    ['a null time', '[null,"o","x"]', /time/],
    ['an infinite time', '[1e999,"o","x"]', /time/],
    ['a negative time', '[-0.5,"o","x"]', /time/],
    ['an unknown code', '[1,"x","x"]', /code/],
    ['a number code', '[1,1,"x"]', /code/],
    ['number data', '[1,"o",5]', /data/],
    ['null data', '[1,"o",null]', /data/],
  ])('refuses an event that is %s', (_name, line, message) => {
    expect(refusal(() => checkCastChunk(`${line}\n`, NEXT)).detail).toMatch(message);
  });

  it('does not change the state it is given', () => {
    const state = { first: true, allowInput: false, lastTime: 0 };
    checkCastChunk(`${HEADER}[5,"o","x"]\n`, state);
    expect(state).toEqual({ first: true, allowInput: false, lastTime: 0 });
  });
});

describe('parseCast', () => {
  it('reads the header and every event, input included', () => {
    const cast = `${HEADER}[0.5,"o","$ "]\n[1,"i","l"]\n[1.25,"r","90x30"]\n`;
    expect(parseCast(cast)).toEqual({
      header: { version: 2, width: 80, height: 24 },
      events: [
        [0.5, 'o', '$ '],
        [1, 'i', 'l'],
        [1.25, 'r', '90x30'],
      ],
    });
  });

  it('refuses an empty recording and one without a header', () => {
    refusal(() => parseCast(''));
    refusal(() => parseCast('[1,"o","x"]\n'));
  });
});

describe('format then check', () => {
  const text = fc.string({ unit: 'binary', maxLength: 100 });
  const header: fc.Arbitrary<CastHeader> = fc.record(
    {
      version: fc.constant(2 as const),
      width: fc.integer({ min: 1, max: CAST_LIMITS.maxWidth }),
      height: fc.integer({ min: 1, max: CAST_LIMITS.maxHeight }),
      timestamp: fc.maxSafeNat(),
      idle_time_limit: fc.double({ min: 0.001, max: 3600, noNaN: true }),
      title: fc.string({ unit: 'binary', maxLength: 128 }),
      env: fc.dictionary(fc.string({ maxLength: 32 }), fc.string({ unit: 'binary', maxLength: 128 }), {
        maxKeys: CAST_LIMITS.maxEnvEntries,
      }),
    },
    { requiredKeys: ['version', 'width', 'height'] },
  );
  const size = fc
    .tuple(fc.integer({ min: 1, max: 9999 }), fc.integer({ min: 1, max: 9999 }))
    .map(([w, h]) => `${w}x${h}`);
  const event = fc.oneof(
    fc.tuple(fc.constantFrom('o' as const, 'i' as const, 'm' as const), text),
    fc.tuple(fc.constant('r' as const), size),
  );
  const events: fc.Arbitrary<CastEvent[]> = fc
    .array(fc.tuple(fc.double({ min: 0, max: 1e6, noNaN: true }), event), { maxLength: 30 })
    .map((list) => {
      const times = list.map(([t]) => t).sort((a, b) => a - b);
      return list.map(([, [code, data]], i): CastEvent => [times[i] as number, code, data]);
    });

  it('always passes checkCastChunk, whole or cut into chunks, and round-trips through parseCast', () => {
    fc.assert(
      fc.property(header, events, fc.array(fc.nat(), { maxLength: 5 }), (h, evs, cuts) => {
        const lines = [formatCastHeader(h), ...evs.map(formatCastEvent)];
        for (const line of lines) {
          expect(line.endsWith('\n')).toBe(true);
          expect(line.slice(0, -1)).not.toContain('\n');
        }
        const whole = lines.join('');
        const rounded = evs.map(([t, c, d]): CastEvent => [Math.round(t * 1e6) / 1e6, c, d]);
        const state = { first: true, allowInput: true, lastTime: 0 };
        expect(checkCastChunk(whole, state).events).toBe(evs.length);

        // The same lines in several chunks, the state carried from one to the next.
        const bounds = [...new Set([1, ...cuts.map((c) => 1 + (c % lines.length)), lines.length])].sort(
          (a, b) => a - b,
        );
        let carried = { ...state };
        let start = 0;
        let count = 0;
        for (const end of bounds) {
          const result = checkCastChunk(lines.slice(start, end).join(''), carried);
          // A heartbeat between chunks changes nothing.
          expect(checkCastChunk('', { ...carried, first: false, lastTime: result.lastTime }).events).toBe(0);
          count += result.events;
          carried = { first: false, allowInput: true, lastTime: result.lastTime };
          start = end;
        }
        expect(count).toBe(evs.length);

        const parsed = parseCast(whole);
        expect(parsed.events).toEqual(rounded);
        expect(parsed.header).toEqual(JSON.parse(JSON.stringify(h)));
      }),
    );
  });
});
