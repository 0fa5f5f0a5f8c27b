import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import LongestFirstSequencer from './test/support/sequencer.js';

const src = (path: string) => fileURLToPath(new URL(`./packages/${path}`, import.meta.url));
const pkg = (name: string) => src(`${name}/src/index.ts`);

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
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
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
