/**
 * Playing a recording back: the asciicast v2 a session's recording is served as, turned into a
 * timeline of output frames, and a player that moves along it by an injected timer (a unit test
 * drives it without waiting). No DOM here: the recording view draws what the player says.
 */
import { pieceStripper } from './terminal-text.js';

/** Idle gaps longer than this are played as this long (milliseconds). */
export const MAX_IDLE_MS = 2000;

/** Output shown from `at` (milliseconds into the capped timeline): `end` characters of the text. */
export interface Frame {
  at: number;
  end: number;
}

/** A recording ready to play: its text (escapes stripped) and when each part of it appears. */
export interface Timeline {
  text: string;
  frames: Frame[];
  /** Milliseconds, gaps capped. */
  duration: number;
  /** How many idle gaps were shortened to `MAX_IDLE_MS`. */
  cappedGaps: number;
}

/**
 * The timeline of an asciicast v2 recording: its first line is the header, each further line
 * an event `[seconds, kind, data]`; output (`o`) events are shown, the others only take time.
 * A line that is not an event is skipped, as the full-text view skips it.
 *
 * @example
 * timelineOf('{"version":2}\n[0.5,"o","hi"]\n').frames; // [{ at: 500, end: 2 }]
 */
export function timelineOf(cast: string, maxIdleMs = MAX_IDLE_MS): Timeline {
  const strip = pieceStripper();
  const frames: Frame[] = [];
  let text = '';
  let last = 0;
  let at = 0;
  let cappedGaps = 0;
  for (const line of cast.split('\n').slice(1)) {
    const event = eventOf(line);
    if (!event) continue;
    const gap = Math.max(0, event.seconds * 1000 - last);
    last = Math.max(last, event.seconds * 1000);
    if (gap > maxIdleMs) cappedGaps++;
    at += Math.min(gap, maxIdleMs);
    if (event.kind !== 'o') continue;
    const shown = strip.next(event.data);
    if (shown === '') continue;
    text += shown;
    frames.push({ at, end: text.length });
  }
  const rest = strip.end();
  if (rest !== '') {
    text += rest;
    frames.push({ at, end: text.length });
  }
  return { text, frames, duration: at, cappedGaps };
}

function eventOf(line: string): { seconds: number; kind: string; data: string } | undefined {
  if (line.trim() === '') return undefined;
  try {
    const event: unknown = JSON.parse(line);
    if (!Array.isArray(event)) return undefined;
    const [seconds, kind, data] = event as unknown[];
    if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return undefined;
    if (typeof kind !== 'string' || typeof data !== 'string') return undefined;
    return { seconds, kind, data };
  } catch {
    return undefined;
  }
}

/** How many frames have appeared by `position` (milliseconds). */
export function framesShownAt(timeline: Timeline, position: number): number {
  let low = 0;
  let high = timeline.frames.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (timeline.frames[mid]!.at <= position) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** The text shown at `position` (milliseconds). */
export function textAt(timeline: Timeline, position: number): string {
  const shown = framesShownAt(timeline, position);
  return shown === 0 ? '' : timeline.text.slice(0, timeline.frames[shown - 1]!.end);
}

/** `m:ss` of some milliseconds (rounded down to the second). */
export function clockOf(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
}

/** The speeds a person can choose. */
export const SPEEDS = [1, 2, 8] as const;
export type Speed = (typeof SPEEDS)[number];

/** What the player needs of time: the browser's clock and timeouts, or a test's. */
export interface PlaybackTimer {
  /** Milliseconds, monotonic. */
  now(): number;
  set(run: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const browserTimer: PlaybackTimer = {
  now: () => performance.now(),
  set: (run, ms) => setTimeout(run, ms),
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface PlayerState {
  /** Milliseconds into the (capped) timeline. */
  position: number;
  playing: boolean;
  speed: Speed;
}

/** The longest wait between two updates while playing, so the elapsed time moves smoothly. */
const MAX_STEP_MS = 250;

/**
 * Plays a timeline: play, pause, seek and speed, telling `onChange` each time the state moves.
 * While playing it wakes when the next frame is due (or every `MAX_STEP_MS` of real time, for
 * the elapsed time), and stops at the end; playing again from the end starts over.
 */
export class Player {
  readonly #timeline: Timeline;
  readonly #timer: PlaybackTimer;
  readonly #onChange: (state: PlayerState) => void;
  #state: PlayerState = { position: 0, playing: false, speed: 1 };
  /** While playing: the position and the timer's time when it last (re)started. */
  #from = { position: 0, time: 0 };
  #wake: unknown;

  constructor(timeline: Timeline, timer: PlaybackTimer, onChange: (state: PlayerState) => void) {
    this.#timeline = timeline;
    this.#timer = timer;
    this.#onChange = onChange;
  }

  get state(): PlayerState {
    return this.#state;
  }

  play(): void {
    if (this.#state.playing) return;
    const position = this.#state.position >= this.#timeline.duration ? 0 : this.#state.position;
    this.#set({ position, playing: true });
    this.#restart();
  }

  pause(): void {
    if (!this.#state.playing) return;
    this.#cancel();
    this.#set({ position: this.#now(), playing: false });
  }

  toggle(): void {
    if (this.#state.playing) this.pause();
    else this.play();
  }

  seek(position: number): void {
    const clamped = Math.min(Math.max(0, position), this.#timeline.duration);
    this.#set({ position: clamped });
    if (this.#state.playing) this.#restart();
  }

  setSpeed(speed: Speed): void {
    const position = this.#state.playing ? this.#now() : this.#state.position;
    this.#set({ position, speed });
    if (this.#state.playing) this.#restart();
  }

  /** Stops the timer for good (the view goes away). */
  dispose(): void {
    this.#cancel();
    this.#state = { ...this.#state, playing: false };
  }

  /** Where playback is now, by the timer. */
  #now(): number {
    const played = (this.#timer.now() - this.#from.time) * this.#state.speed;
    return Math.min(this.#from.position + played, this.#timeline.duration);
  }

  #restart(): void {
    this.#cancel();
    this.#from = { position: this.#state.position, time: this.#timer.now() };
    this.#schedule();
  }

  #schedule(): void {
    const position = this.#state.position;
    if (position >= this.#timeline.duration) {
      this.#set({ playing: false });
      return;
    }
    const next = this.#timeline.frames[framesShownAt(this.#timeline, position)];
    const due = Math.min(next?.at ?? this.#timeline.duration, this.#timeline.duration);
    const wait = Math.min(Math.max(0, (due - position) / this.#state.speed), MAX_STEP_MS);
    this.#wake = this.#timer.set(() => this.#tick(), wait);
  }

  #tick(): void {
    this.#wake = undefined;
    this.#set({ position: this.#now() });
    this.#schedule();
  }

  #cancel(): void {
    if (this.#wake !== undefined) this.#timer.clear(this.#wake);
    this.#wake = undefined;
  }

  #set(change: Partial<PlayerState>): void {
    this.#state = { ...this.#state, ...change };
    this.#onChange(this.#state);
  }
}
