import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module of the fault suite (faults/run.mjs), typed by its use here.
import { failing, TRIALS, table } from '../../faults/run.mjs';
import { describeOnPostgres } from '../support/stores.js';

interface TrialRow {
  losses: number;
  serverErrors: number;
  brokerDeaths: number;
  auditVerified: boolean;
  lifecycles: number;
  faults: number;
}
const trials = TRIALS as Record<string, (quick: boolean) => Promise<TrialRow>>;
const isFailing = failing as (row: TrialRow) => boolean;

/**
 * A short smoke of the fault-injection suite (`npm run faults` runs it at full size): real
 * broker processes, `kill -9` mid-lifecycle on SQLite, a PEP partitioned from its broker,
 * PostgreSQL connections terminated under load. Nothing the broker acknowledged may be lost, and the broker must never die of a fault.
 */
describe('fault-injection smoke (npm run faults -- --quick)', () => {
  it('kill -9 of a broker on SQLite loses nothing it acknowledged', async () => {
    const row = await trials['crash-sqlite']!(true);
    console.log(table([row]));
    expect(row.faults).toBeGreaterThan(0);
    expect(row.lifecycles).toBeGreaterThan(0);
    expect(isFailing(row), JSON.stringify(row)).toBe(false);
  }, 300_000);

  it('PEPs starting together from 0 on a long log are all fresh within budget from one snapshot, and judge right', async () => {
    const row = (await trials['catch-up']!(true)) as TrialRow & { peps: number; wrongDecisions: number };
    console.log(table([row]));
    expect(row.peps).toBeGreaterThan(0);
    expect(row.wrongDecisions).toBe(0);
    expect(isFailing(row), JSON.stringify(row)).toBe(false);
  }, 300_000);

  it('a PEP partitioned from the broker never allows an ended session past its budget, and misses nothing', async () => {
    const row = (await trials['pep-partition']!(true)) as TrialRow & { rounds: number };
    console.log(table([row]));
    expect(row.rounds).toBeGreaterThan(0);
    expect(isFailing(row), JSON.stringify(row)).toBe(false);
  }, 300_000);
});

describeOnPostgres('fault-injection smoke on PostgreSQL', () => {
  it('connections terminated under load: the broker lives, nothing is lost', async () => {
    const row = await trials['pg-terminate']!(true);
    console.log(table([row]));
    expect(row.faults).toBeGreaterThan(0);
    expect(isFailing(row), JSON.stringify(row)).toBe(false);
  }, 300_000);
});
