/**
 * The console's pages: an HTML shell per page and one script, served by the broker under
 * `/console` with a strict Content Security Policy (no inline script or style, nothing from
 * elsewhere). The script is the console's Preact app (`console-app/`, bundled by esbuild into
 * `dist/console-app/console.js`): it renders each page's views into its `<main>` and talks to
 * the same API as the CLI; whatever text it shows from the API goes in as text, never as HTML.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Security headers of every console answer. */
export const CONSOLE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'cross-origin-opener-policy': 'same-origin',
} as const;

/**
 * A page: its title, and the `<main>` the app renders the page's views into (`page` says
 * which). The heading and the text for a browser without the script are all that is static.
 */
const page = (title: string, name: 'home' | 'device' | 'enrol') => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Tether</title>
<link rel="stylesheet" href="/console/console.css">
<script type="module" src="/console/console.js"></script>
</head>
<body>
<noscript><h1>Tether</h1><p>The console needs JavaScript: its one script comes from this broker.</p></noscript>
<main id="console" data-page="${name}"></main>
</body>
</html>
`;

/** Sign-in, then the signed-in views (ask, yours, decisions, oversight with recordings). */
export const HOME_PAGE = page('Console', 'home');

/** Confirming the code `tether login` shows. */
export const DEVICE_PAGE = page('Sign in a command line', 'device');

/** Creating a passkey from a one-time enrolment link. */
export const ENROL_PAGE = page('Enrol a passkey', 'enrol');

export const CONSOLE_CSS = `body{font-family:system-ui,sans-serif;margin:2rem;max-width:48rem;color:#111;background:#fff}
button{font:inherit;padding:.5rem 1rem;border:1px solid #333;border-radius:.25rem;background:#f4f4f4;cursor:pointer}
button:focus-visible,a:focus-visible{outline:3px solid #1a5fb4;outline-offset:2px}
#status{min-height:1.5em}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5rem;max-height:24rem;overflow:auto}
li{margin:.5rem 0}
li span{margin-right:.75rem}
label{margin-left:.5rem}
.reason{font-style:italic}
fieldset.player{border:1px solid #ccc;border-radius:.25rem;margin:.5rem 0}
.player input[type=range]{vertical-align:middle;width:12rem}
.note{font-size:.9em;color:#444}
`;

/** Where the bundled app is: `dist/console-app/` of the broker package, from `src/` or `dist/`. */
export const CONSOLE_SCRIPT_PATH = fileURLToPath(
  new URL('../../dist/console-app/console.js', import.meta.url),
);

/**
 * The console's script as built (`npm run build`), or undefined when it was not: the broker
 * still starts, and the console says it is not built (served from `src/` without a build, say).
 */
export function readConsoleScript(path = CONSOLE_SCRIPT_PATH): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
