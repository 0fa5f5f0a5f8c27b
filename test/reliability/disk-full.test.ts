import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module of the fault suite (faults/disk-full-trial.mjs), typed by its use here.
import { unmountLeftovers } from '../../faults/disk-full-trial.mjs';
// @ts-expect-error: a plain ES module of the fault suite (faults/run.mjs), typed by its use here.
import { failing, TRIALS, table } from '../../faults/run.mjs';

interface DiskFullRow {
  losses: number;
  serverErrors: number;
  brokerDeaths: number;
  auditVerified: boolean;
  lifecycles: number;
  faults: number;
  unavailableWhileFull: number;
  otherAnswers: number;
  readyzWhileFull: { 503: number; 200: number; other: number };
  readyzRecovered: boolean;
  diskFull: string;
  integrity: string;
  notes?: string;
}
const trials = TRIALS as Record<string, (quick: boolean) => Promise<DiskFullRow>>;
const isFailing = failing as (row: DiskFullRow) => boolean;

/**
 * The disk under a SQLite store fills up (`npm run faults -- disk-full` at full size): a real
 * broker process on a small tmpfs (or loop-mounted ext4) filled to the last byte. Calls answer
 * 503, never another 5xx; `/readyz` says 503 until space returns and 200 after; nothing
 * acknowledged is lost and SQLite finds the file intact. Needs root with CAP_SYS_ADMIN to mount:
 * without it the test fails, saying so, rather than pass without a full disk.
 */
describe('disk full on SQLite (npm run faults -- --quick disk-full)', () => {
  // The trial unmounts in its own `finally`; this is for a run cut short (a timeout).
  afterAll(() => {
    unmountLeftovers();
  });

  it('answers 503 while full, recovers when space returns, and loses or corrupts nothing', async () => {
    const row = await trials['disk-full']!(true);
    console.log(table([row]));
    const detail = JSON.stringify(row);
    expect(row.diskFull, `the trial did not run or did not see the disk full: ${row.diskFull}`).not.toMatch(
      /^not run/,
    );
    expect(row.losses, detail).toBe(0);
    expect(row.serverErrors, `5xx other than 503 while full: ${row.notes}`).toBe(0);
    expect(row.otherAnswers, `answers neither 2xx nor 5xx: ${row.notes}`).toBe(0);
    expect(row.brokerDeaths, detail).toBe(0);
    expect(row.faults, detail).toBeGreaterThan(0);
    expect(row.unavailableWhileFull, detail).toBeGreaterThan(0);
    expect(row.readyzWhileFull[503], detail).toBeGreaterThan(0);
    expect(row.readyzWhileFull[200] + row.readyzWhileFull.other, detail).toBe(0);
    expect(row.readyzRecovered, detail).toBe(true);
    expect(row.lifecycles, detail).toBeGreaterThanOrEqual(20);
    expect(row.auditVerified, detail).toBe(true);
    expect(row.integrity, detail).toBe('ok');
    expect(isFailing(row), detail).toBe(false);
  }, 30_000);
});
