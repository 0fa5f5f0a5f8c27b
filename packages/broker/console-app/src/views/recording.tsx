import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import {
  browserTimer,
  clockOf,
  MAX_IDLE_MS,
  type PlaybackTimer,
  Player,
  type PlayerState,
  SPEEDS,
  type Speed,
  textAt,
  timelineOf,
} from '../playback.js';
import type { Recording } from '../types.js';

/** A session's recording as opened (`opened` counts the openings, so opening again starts afresh). */
export interface OpenRecording {
  id: string;
  recording: Recording;
  opened: number;
}

/**
 * A session's recording: a player that shows the output as it came, by its timing, and the
 * whole of it as text. Terminal control sequences are removed, never interpreted, and what is
 * left goes into the page as text.
 */
export function RecordingView({ open }: { open: OpenRecording | undefined }) {
  const title = open
    ? `Recording of ${open.id}${open.recording.intact ? '' : ' (ALTERED in the store)'}`
    : 'Recording';
  const timeline = useMemo(() => (open ? timelineOf(open.recording.cast) : undefined), [open]);
  return (
    <>
      <h4 id="recording-title">{title}</h4>
      {open && timeline && (
        <RecordingPlayer key={`${open.id}#${open.opened}`} timeline={timeline} timer={browserTimer} />
      )}
      <details>
        <summary>Full text of the recording</summary>
        <pre id="recording">{timeline?.text ?? ''}</pre>
      </details>
    </>
  );
}

/**
 * Play/Pause, speed, position and elapsed time over the output so far. Every control is a
 * native one with a label: reachable with Tab, worked with Enter, Space and the arrow keys.
 */
export function RecordingPlayer({
  timeline,
  timer,
}: {
  timeline: ReturnType<typeof timelineOf>;
  timer: PlaybackTimer;
}) {
  const [state, setState] = useState<PlayerState>({ position: 0, playing: false, speed: 1 });
  const player = useMemo(() => new Player(timeline, timer, setState), [timeline, timer]);
  useEffect(() => () => player.dispose(), [player]);
  const text = textAt(timeline, state.position);
  const screen = useRef<HTMLPreElement>(null);
  // Follow the output as it grows, as a terminal does.
  useEffect(() => {
    if (screen.current && state.playing) screen.current.scrollTop = screen.current.scrollHeight;
  }, [text, state.playing]);
  const elapsed = `${clockOf(state.position)} of ${clockOf(timeline.duration)}`;
  const capped = timeline.cappedGaps;
  return (
    <fieldset class="player">
      <legend>Player</legend>
      <button type="button" id="player-toggle" onClick={() => player.toggle()}>
        {state.playing ? 'Pause' : 'Play'}
      </button>{' '}
      <label for="player-speed">Speed</label>{' '}
      <select
        id="player-speed"
        value={String(state.speed)}
        onChange={(event) => player.setSpeed(Number(event.currentTarget.value) as Speed)}
      >
        {SPEEDS.map((speed) => (
          <option key={speed} value={String(speed)}>{`${speed}×`}</option>
        ))}
      </select>{' '}
      <label for="player-position">Position</label>{' '}
      <input
        id="player-position"
        type="range"
        min={0}
        max={timeline.duration}
        step={100}
        value={state.position}
        aria-valuetext={elapsed}
        onInput={(event) => player.seek(Number(event.currentTarget.value))}
      />{' '}
      <span id="player-time">{elapsed}</span>
      <p class="note">
        {`Idle gaps longer than ${MAX_IDLE_MS / 1000} s play as ${MAX_IDLE_MS / 1000} s` +
          (capped > 0 ? ` (${capped} in this recording).` : '.')}
      </p>
      <pre id="playback" ref={screen}>
        {text}
      </pre>
    </fieldset>
  );
}
