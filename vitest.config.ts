import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';
import LongestFirstSequencer from './test/support/sequencer.js';

const src = (path: string) => fileURLToPath(new URL(`./packages/${path}`, import.meta.url));
const pkg = (name: string) => src(`${name}/src/index.ts`);

/**
 * The second runtime's pass (`scripts/test-on-node24.sh` sets `TETHER_SECOND_RUNTIME`) runs
 * what depends on the runtime: every package's unit tests (crypto, JOSE, parsing), the stores
 * (the native SQLite addon, the pg driver), the HTTP API, sessions, enforcement and revocation
 * streams, and the packed packages. The rest (scenario, fault, fuzz, scale and browser suites)
 * exercises Tether's logic, which the first pass already ran in full; running it twice would
 * take CI past its 30 minutes.
 */
const SECOND_RUNTIME_RUNS = [
  'packages/*/src/**/*.test.ts',
  'packages/broker/console-app/src/**/*.test.ts',
  'test/store/**/*.test.ts',
  'test/api/**/*.test.ts',
  'test/sessions/**/*.test.ts',
  'test/enforcement/**/*.test.ts',
  'test/revocation/**/*.test.ts',
  'test/packaging/**/*.test.ts',
  'test/architecture/**/*.test.ts',
];
const SECOND_RUNTIME_SKIPS = ['test/api/fuzz.sqlite.test.ts', 'test/api/fuzz.postgres.test.ts'];
const secondRuntime = Boolean(process.env.TETHER_SECOND_RUNTIME);

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources, not the built output.
    // Subpaths first: an alias also matches every path below it.
    alias: [
      { find: '@tether-broker/protocol/api', replacement: src('protocol/src/api/index.ts') },
      { find: '@tether-broker/pep/core', replacement: src('pep/src/core.ts') },
      { find: '@tether-broker/protocol', replacement: pkg('protocol') },
      { find: '@tether-broker/pep', replacement: pkg('pep') },
      { find: '@tether-broker/client', replacement: pkg('client') },
      { find: '@tether-broker/broker', replacement: pkg('broker') },
    ],
  },
  test: {
    include: secondRuntime
      ? SECOND_RUNTIME_RUNS
      : ['packages/*/src/**/*.test.ts', 'packages/broker/console-app/src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, ...(secondRuntime ? SECOND_RUNTIME_SKIPS : [])],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // The suite waits on PostgreSQL, sockets and child processes about as much as it computes:
    // vitest's default (one fork per core but one) leaves a 2-core machine running one file at
    // a time. Two forks there took the run from 931 s to 618 s, with the same results.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    minWorkers: Math.max(2, availableParallelism() - 1),
    sequence: { sequencer: LongestFirstSequencer },
    globalSetup: ['./test/support/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
