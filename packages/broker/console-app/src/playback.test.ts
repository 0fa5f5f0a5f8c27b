import { describe, expect, it } from 'vitest';
import {
  clockOf,
  MAX_IDLE_MS,
  type PlaybackTimer,
  Player,
  type PlayerState,
  textAt,
  timelineOf,
} from './playback.js';

const HEADER = '{"version":2,"width":80,"height":24}';
const cast = (...events: [number, string, string][]) =>
  [HEADER, ...events.map((e) => JSON.stringify(e))].join('\n') + '\n';

/** A timer that moves only when the test says: timeouts run in order of when they are due. */
function manualTimer() {
  let now = 0;
  let next = 1;
  const due = new Map<number, { at: number; run: () => void }>();
  const timer: PlaybackTimer = {
    now: () => now,
    set: (run, ms) => {
      const id = next++;
      due.set(id, { at: now + ms, run });
      return id;
    },
    clear: (handle) => {
      due.delete(handle as number);
    },
  };
  /** Moves time on by `ms`, running each timeout as its time comes. */
  const advance = (ms: number) => {
    const until = now + ms;
    for (;;) {
      const [id, first] = [...due.entries()].sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0] ?? [];
      if (id === undefined || !first || first.at > until) break;
      due.delete(id);
      now = first.at;
      first.run();
    }
    now = until;
  };
  return { timer, advance, pending: () => due.size };
}

describe('the timeline of a recording', () => {
  it('shows output events at their times, escapes stripped, other events only taking time', () => {
    const t = timelineOf(
      cast(
        [0.1, 'o', '$ ls\r\n'],
        [0.5, 'r', '100x30'],
        [1, 'o', '\u001b[1mbold\u001b[0m\r\n'],
        [1.5, 'i', 'q'],
      ),
    );
    expect(t.text).toBe('$ ls\nbold\n');
    expect(t.frames).toEqual([
      { at: 100, end: 5 },
      { at: 1000, end: 10 },
    ]);
    expect(t.duration).toBe(1500);
    expect(t.cappedGaps).toBe(0);
    expect(textAt(t, 0)).toBe('');
    expect(textAt(t, 100)).toBe('$ ls\n');
    expect(textAt(t, 999)).toBe('$ ls\n');
    expect(textAt(t, 1500)).toBe('$ ls\nbold\n');
  });

  it(`caps idle gaps at ${MAX_IDLE_MS} ms, the first one too`, () => {
    const t = timelineOf(cast([5, 'o', 'a'], [5.5, 'o', 'b'], [65.5, 'o', 'c'], [66, 'o', 'd']));
    expect(t.frames.map((f) => f.at)).toEqual([2000, 2500, 4500, 5000]);
    expect(t.duration).toBe(5000);
    expect(t.cappedGaps).toBe(2);
    // Uncapped, when asked.
    expect(timelineOf(cast([5, 'o', 'a']), Number.POSITIVE_INFINITY).duration).toBe(5000);
  });

  it('joins a sequence cut between events, so the pieces read as the whole stripped', () => {
    const t = timelineOf(
      cast(
        [0, 'o', 'a\u001b[3'],
        [1, 'o', '1mred\u001b]0;ti'],
        [2, 'o', 'tle\u001b'],
        [3, 'o', '\\b\u001b'],
        [4, 'o', '\u0007\u0000c'],
      ),
    );
    expect(t.text).toBe('aredbc');
    expect(textAt(t, 0)).toBe('a');
    expect(textAt(t, 1000)).toBe('ared');
    expect(textAt(t, 3000)).toBe('aredb');
  });

  it('skips lines that are not events, as the full-text view does', () => {
    const t = timelineOf(`${HEADER}\nnot json\n{"a":1}\n[1,"o"]\n[-1,"o","x"]\n[2,"o","ok"]\n`);
    expect(t.text).toBe('ok');
    expect(t.duration).toBe(2000);
  });

  it('reads an empty recording as nothing to play', () => {
    expect(timelineOf(`${HEADER}\n`)).toEqual({ text: '', frames: [], duration: 0, cappedGaps: 0 });
    expect(timelineOf('')).toEqual({ text: '', frames: [], duration: 0, cappedGaps: 0 });
  });

  it('writes times as m:ss', () => {
    expect([0, 999, 1000, 61_500, 600_000].map(clockOf)).toEqual(['0:00', '0:00', '0:01', '1:01', '10:00']);
  });
});

describe('the player', () => {
  const t = timelineOf(cast([0, 'o', 'one\n'], [1, 'o', 'two\n'], [10, 'o', 'three\n'], [11, 'o', 'four\n']));
  // 0, 1000, 3000 (a 9 s gap capped), 4000.

  function playing() {
    const clock = manualTimer();
    const states: PlayerState[] = [];
    const player = new Player(t, clock.timer, (s) => states.push(s));
    const shown = () => textAt(t, player.state.position);
    return { ...clock, player, states, shown };
  }

  it('plays the output in time, progressively, and stops at the end', () => {
    const { player, advance, shown, pending } = playing();
    expect(shown()).toBe('one\n');
    player.play();
    expect(player.state.playing).toBe(true);
    advance(999);
    expect(shown()).toBe('one\n');
    advance(1);
    expect(shown()).toBe('one\ntwo\n');
    advance(1999);
    expect(shown()).toBe('one\ntwo\n');
    advance(1);
    expect(shown()).toBe('one\ntwo\nthree\n');
    advance(1000);
    expect(shown()).toBe('one\ntwo\nthree\nfour\n');
    expect(player.state).toEqual({ position: 4000, playing: false, speed: 1 });
    expect(pending()).toBe(0);
  });

  it('updates the elapsed time at least every 250 ms while waiting for output', () => {
    const { player, advance, states } = playing();
    player.play();
    advance(1000);
    const before = states.length;
    advance(2000);
    // From 1000 to 3000 with no frame between: still woken every 250 ms.
    expect(states.length - before).toBeGreaterThanOrEqual(8);
  });

  it('plays 8× as fast at 8×, and changing speed keeps the position', () => {
    const { player, advance, shown } = playing();
    player.setSpeed(8);
    player.play();
    advance(125);
    expect(shown()).toBe('one\ntwo\n');
    expect(player.state.position).toBe(1000);
    player.setSpeed(2);
    advance(1000);
    expect(player.state.position).toBe(3000);
    expect(shown()).toBe('one\ntwo\nthree\n');
    advance(500);
    expect(player.state).toMatchObject({ position: 4000, playing: false, speed: 2 });
  });

  it('pauses where it is and goes on from there', () => {
    const { player, advance, shown, pending } = playing();
    player.play();
    advance(1500);
    player.pause();
    expect(player.state).toMatchObject({ position: 1500, playing: false });
    expect(pending()).toBe(0);
    advance(10_000);
    expect(player.state.position).toBe(1500);
    player.toggle();
    advance(1500);
    expect(shown()).toBe('one\ntwo\nthree\n');
  });

  it('seeks, clamped to the recording, while playing or not; plays again from the start at the end', () => {
    const { player, advance, shown } = playing();
    player.seek(3000);
    expect(shown()).toBe('one\ntwo\nthree\n');
    player.seek(99_999);
    expect(player.state.position).toBe(4000);
    player.seek(-5);
    expect(player.state.position).toBe(0);
    player.play();
    advance(500);
    player.seek(3500);
    advance(500);
    expect(player.state).toMatchObject({ position: 4000, playing: false });
    player.play();
    expect(player.state.position).toBe(0);
    expect(shown()).toBe('one\n');
  });

  it('stops its timer when disposed', () => {
    const { player, advance, pending, states } = playing();
    player.play();
    player.dispose();
    expect(pending()).toBe(0);
    const seen = states.length;
    advance(10_000);
    expect(states.length).toBe(seen);
  });
});
