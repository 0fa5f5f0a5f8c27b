import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The suite's longest files, longest first (the run's "slowest test files" list names them).
 * Vitest orders a fresh checkout's files by size, having no timings yet; these are small files
 * (the fuzz halves share their code) that would then start last and leave one worker running
 * them alone for minutes at the end of the run.
 */
const LONGEST = [
  'test/api/fuzz.sqlite.test.ts',
  'test/api/fuzz.postgres.test.ts',
  'test/evaluation/reevaluation-batch.test.ts',
  'test/reliability/faults-smoke.test.ts',
];

/** Vitest's own order (failed first, then longest or largest), with {@link LONGEST} ahead of it. */
export default class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (spec: TestSpecification) => {
      const at = LONGEST.indexOf(relative(this.ctx.config.root, spec.moduleId).split('\\').join('/'));
      return at === -1 ? LONGEST.length : at;
    };
    // Array.prototype.sort is stable: the rest keep vitest's order.
    return [...sorted].sort((a, b) => rank(a) - rank(b));
  }
}
