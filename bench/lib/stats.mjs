// Small statistics and formatting helpers shared by the benchmarks.

/** The `p`-th percentile (0–100) of `values`, nearest-rank. */
export function percentile(values, p) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

/** `1,234` */
export const int = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');

/** Milliseconds with a precision that suits their size. */
export function ms(n) {
  if (!Number.isFinite(n)) return '—';
  if (Math.abs(n) < 1) return `${(n * 1000).toFixed(0)} µs`;
  if (Math.abs(n) < 10) return `${n.toFixed(2)} ms`;
  return `${n.toFixed(1)} ms`;
}

/** `12.3×` / `0.83×` */
export const times = (n) => (Number.isFinite(n) ? `${n >= 10 ? n.toFixed(1) : n.toFixed(2)}×` : '—');
