import { setTimeout as sleep } from 'node:timers/promises';
import type { SessionReceipt } from '@tether-broker/protocol';
import { renderFields, renderTable, shortTime } from './output.js';

/** How often `session end --wait-enforced` reads the receipt. */
const POLL_MS = 200;

/** `+120ms`, `+2.5s`: how long after the end a PEP enforced it. */
function after(endedAt: string | null, at: string | null): string {
  if (!endedAt || !at) return '';
  const ms = Math.max(0, Date.parse(at) - Date.parse(endedAt));
  return ms < 1000 ? ` (+${ms}ms)` : ` (+${(ms / 1000).toFixed(1)}s)`;
}

function enforcementText(r: SessionReceipt): string {
  if (r.state === 'active') return 'no: the session is live';
  if (r.seq === null) return 'unknown: the end is not in the revocation log';
  if (r.enforced)
    return r.peps.some((p) => p.live)
      ? 'yes, by every live enforcement point'
      : 'yes (no live enforcement point)';
  return `not yet: waiting for ${r.pending.join(', ')}`;
}

/** Live processes of a PEP (replicas sharing its identity), and how many have not applied the end. */
function instancesText(p: SessionReceipt['peps'][number], seq: number | null): string {
  const n = p.instances.length;
  if (n === 0) return '-';
  const behind = seq === null ? 0 : p.instances.filter((i) => i.applied < seq).length;
  return behind === 0 ? String(n) : `${n} (${behind} pending)`;
}

/** A receipt for people: the end, whether it is enforced, and each enforcement point. */
export function receiptDetails(r: SessionReceipt): string {
  const fields = renderFields([
    ['session', r.session],
    [
      'state',
      r.state === 'active'
        ? 'active'
        : `ended${r.reason ? ` (${r.reason})` : ''} at ${shortTime(r.ended_at)}`,
    ],
    ['log position', r.seq === null ? undefined : String(r.seq)],
    ['enforced', enforcementText(r)],
  ]);
  if (r.peps.length === 0) return `${fields}\nenforcement points: none has reported to the broker`;
  const table = renderTable(
    ['PEP', 'LIVE', 'APPLIED', 'ENFORCED', 'LAST SEEN', 'INSTANCES'],
    r.peps.map((p) => [
      p.name,
      p.live ? 'yes' : 'no',
      String(p.applied),
      p.enforced_at
        ? `${shortTime(p.enforced_at)}${after(r.ended_at, p.enforced_at)}`
        : r.seq !== null && p.applied >= r.seq
          ? 'yes (time no longer kept)'
          : p.live && r.state === 'ended'
            ? 'pending'
            : '-',
      shortTime(p.last_seen_at),
      instancesText(p, r.seq),
    ]),
  );
  return `${fields}\n\n${table}`;
}

export interface WaitOptions {
  /** Give up after this long (0: read once). */
  timeoutMs: number;
  pollMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<unknown>;
  /** Called with each receipt that is not yet enforced. */
  onPending?: (receipt: SessionReceipt) => void;
}

/**
 * Reads the receipt until the end is enforced or `timeoutMs` has passed; answers the last
 * receipt read. The caller decides what a receipt that is still not enforced means.
 */
export async function waitForEnforcement(
  read: () => Promise<SessionReceipt>,
  options: WaitOptions,
): Promise<SessionReceipt> {
  const now = options.now ?? Date.now;
  const pause = options.sleep ?? ((ms: number) => sleep(ms));
  const deadline = now() + options.timeoutMs;
  for (;;) {
    const receipt = await read();
    const left = deadline - now();
    if (receipt.enforced || left <= 0) return receipt;
    options.onPending?.(receipt);
    await pause(Math.min(options.pollMs ?? POLL_MS, left));
  }
}
