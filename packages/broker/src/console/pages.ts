/**
 * The console's pages: static HTML and one script, served by the broker under `/console` with
 * a strict Content Security Policy (no inline script or style, nothing from elsewhere). The
 * script talks to the same API as the CLI; whatever text it shows from the API goes in with
 * `textContent`, never as HTML. No framework yet: the first pages are sign-in, enrolment and
 * the signed-in home (the requester, approver and admin views build on this).
 */

/** Security headers of every console answer. */
export const CONSOLE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'cross-origin-opener-policy': 'same-origin',
} as const;

const page = (title: string, body: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Tether</title>
<link rel="stylesheet" href="/console/console.css">
<script type="module" src="/console/console.js"></script>
</head>
<body>
<main>
<h1>Tether</h1>
${body}
<p id="status" role="status" aria-live="polite"></p>
</main>
</body>
</html>
`;

export const HOME_PAGE = page(
  'Console',
  `<section id="signed-out" hidden>
<h2>Sign in</h2>
<p>Sign in with the passkey you enrolled from your invitation link.</p>
<button type="button" id="sign-in">Sign in with a passkey</button>
<p id="company" hidden><a id="company-sign-in" href="/console">Sign in with your company account</a></p>
</section>
<div id="signed-in" hidden>
<h2>Signed in as <span id="who"></span></h2>
<button type="button" id="sign-out">Sign out</button>
<section aria-labelledby="ask-title">
<h3 id="ask-title">Ask for a privilege</h3>
<form id="ask-form">
<label for="ask-privilege">Privilege</label> <select id="ask-privilege" name="privilege" required></select>
<label for="ask-ticket">Ticket</label> <input id="ask-ticket" name="ticket" maxlength="128">
<label for="ask-justification">Reason</label> <input id="ask-justification" name="justification" maxlength="2048" required>
<label for="ask-duration">Minutes</label> <input id="ask-duration" name="duration" type="number" min="1" max="10080" value="60" required>
<button type="submit">Ask</button>
</form>
</section>
<section aria-labelledby="mine-title">
<h3 id="mine-title">Your requests</h3>
<ul id="mine" aria-labelledby="mine-title"></ul>
<h3 id="sessions-title">Your live sessions</h3>
<ul id="sessions" aria-labelledby="sessions-title"></ul>
</section>
<section aria-labelledby="pending-title">
<h3 id="pending-title">Requests waiting for a decision</h3>
<ul id="pending" aria-labelledby="pending-title"></ul>
</section>
<section id="oversight" aria-labelledby="live-title" hidden>
<h3 id="live-title">Sessions in the tenant</h3>
<ul id="live" aria-labelledby="live-title"></ul>
<button type="button" id="verify">Verify the audit trail</button>
<form id="revoke-form" hidden>
<label for="revoke-kind">Revoke every session of a</label>
<select id="revoke-kind" name="kind"><option value="ticket">ticket</option><option value="principal">principal</option><option value="privilege">privilege</option></select>
<label for="revoke-value">named</label> <input id="revoke-value" name="value" maxlength="128" required>
<button type="submit">Revoke them</button>
</form>
<form id="trail-form">
<label for="trail-ticket">Audit trail of ticket</label> <input id="trail-ticket" name="ticket" maxlength="128" required>
<button type="submit">Show</button>
</form>
<h4 id="trail-title">Audit trail</h4>
<ul id="trail" aria-labelledby="trail-title"></ul>
<h4 id="recording-title">Recording</h4>
<pre id="recording" aria-labelledby="recording-title"></pre>
</section>
</div>`,
);

export const DEVICE_PAGE = page(
  'Sign in a command line',
  `<section>
<h2>Sign in a command line</h2>
<p>A terminal running <code>tether login</code> shows a code. Confirm it here only if you started that sign-in yourself, just now.</p>
<p id="device-signed-out" hidden><a href="/console">Sign in to the console first</a>, then come back to this page.</p>
<form id="device-form">
<label for="device-code">Code</label> <input id="device-code" name="code" autocomplete="off" maxlength="32" required>
<button type="submit" id="device-allow">Allow this sign-in</button>
<button type="button" id="device-deny">Refuse</button>
</form>
</section>`,
);

export const ENROL_PAGE = page(
  'Enrol a passkey',
  `<section>
<h2>Create your passkey</h2>
<p>Your administrator invited you to Tether. Create a passkey on this device: it stays on the device, and you sign in with it.</p>
<button type="button" id="enrol">Create a passkey</button>
<p><a href="/console">Go to sign in</a></p>
</section>`,
);

export const CONSOLE_CSS = `body{font-family:system-ui,sans-serif;margin:2rem;max-width:48rem;color:#111;background:#fff}
button{font:inherit;padding:.5rem 1rem;border:1px solid #333;border-radius:.25rem;background:#f4f4f4;cursor:pointer}
button:focus-visible,a:focus-visible{outline:3px solid #1a5fb4;outline-offset:2px}
#status{min-height:1.5em}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5rem;max-height:24rem;overflow:auto}
li{margin:.5rem 0}
li span{margin-right:.75rem}
label{margin-left:.5rem}
.reason{font-style:italic}
`;

export { CONSOLE_JS } from './console-script.js';
