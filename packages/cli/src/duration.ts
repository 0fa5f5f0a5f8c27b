import { InvalidArgumentError } from 'commander';

const UNIT_SECONDS = { d: 86_400, h: 3_600, m: 60, s: 1 } as const;
const DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/**
 * Parses a human duration into whole seconds: `90s`, `30m`, `2h`, `1h30m`, `1d`, or plain
 * seconds (`900`). Units go from largest to smallest, each at most once.
 *
 * @example
 * ```ts
 * parseDuration('1h30m'); // 5400
 * ```
 */
export function parseDuration(text: string): number {
  const value = text.trim();
  if (/^\d+$/.test(value)) return Number(value);
  const match = DURATION.exec(value);
  if (value === '' || !match) {
    throw new InvalidArgumentError(
      `${JSON.stringify(text)} is not a duration; use e.g. 90s, 30m, 2h, 1h30m or plain seconds`,
    );
  }
  const [, d, h, m, s] = match;
  return (
    Number(d ?? 0) * UNIT_SECONDS.d +
    Number(h ?? 0) * UNIT_SECONDS.h +
    Number(m ?? 0) * UNIT_SECONDS.m +
    Number(s ?? 0) * UNIT_SECONDS.s
  );
}

/** The inverse of {@link parseDuration}, for display: `5400` → `1h30m`. */
export function formatDuration(totalSeconds: number): string {
  if (totalSeconds <= 0) return '0s';
  let rest = Math.round(totalSeconds);
  let out = '';
  for (const [unit, size] of Object.entries(UNIT_SECONDS)) {
    const count = Math.floor(rest / size);
    if (count > 0) out += `${count}${unit}`;
    rest -= count * size;
  }
  return out;
}
