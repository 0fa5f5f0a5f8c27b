// Bundles the built CLI (dist/, from tsc) into bundle/: the entry and one chunk per lazily
// loaded verb, with the client, the protocol, jose and commander inside. A client verb then
// loads a handful of files instead of about sixty modules, which is most of its start-up time
// after Node's own (bench/cli-startup.mjs). The server and gateway stacks stay outside: they
// are optional peers, imported only by the verbs that need them, from the user's install.
// The bundle sits one level below the package, like dist/, so `../package.json` still resolves.
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${pkg}bundle`;

/** Loaded only by server and gateway verbs, and optional: never bundled. */
const EXTERNAL = [
  '@tether-broker/broker',
  '@tether-broker/pep',
  'fastify',
  '@fastify/*',
  'pino',
  'prom-client',
  'yaml',
  'ora',
  // A native addon (optional): loaded from the user's install by recorded `tether exec` only.
  'node-pty',
];

rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { tether: `${pkg}dist/main.js` },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  // commander is CommonJS and requires Node's built-ins; an ES module has no `require` of its own.
  banner: {
    js: "import { createRequire as __tetherRequire } from 'node:module';\nconst require = __tetherRequire(import.meta.url);",
  },
  // Every file at the same level: `../package.json` (the version) resolves from any of them.
  chunkNames: '[name]-[hash]',
  legalComments: 'linked',
  logLevel: 'warning',
});
