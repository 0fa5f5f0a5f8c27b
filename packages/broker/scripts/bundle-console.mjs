// Bundles the console's browser app (console-app/, Preact in TSX) into the one script the
// broker serves as /console/console.js: dist/console-app/console.js, read once when the broker
// starts (src/console/pages.ts). Preact is inside it; nothing else is served to the browser.
// The type check is `tsc -p console-app` (esbuild only strips the types), run before this by
// the root `npm run build`.
import { build } from 'esbuild';

const pkg = new URL('..', import.meta.url);

await build({
  entryPoints: [new URL('console-app/src/main.tsx', pkg).pathname],
  outfile: new URL('dist/console-app/console.js', pkg).pathname,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  jsx: 'automatic',
  jsxImportSource: 'preact',
  logLevel: 'warning',
});
