import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

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
    globalSetup: ['./test/support/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
