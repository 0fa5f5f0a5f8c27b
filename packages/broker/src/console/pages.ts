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
</section>
<section id="signed-in" hidden>
<h2>Signed in as <span id="who"></span></h2>
<button type="button" id="sign-out">Sign out</button>
<h3>Requests waiting for a decision</h3>
<ul id="pending" aria-label="Requests waiting for a decision"></ul>
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
li{margin:.25rem 0}
`;

/** The script: passkey ceremonies with the browser's own JSON (de)serialisation, then the API. */
export const CONSOLE_JS = `const status = document.getElementById('status');
const say = (text) => { status.textContent = text; };
const json = async (method, url, body, csrf) => {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (csrf) headers['x-tether-csrf'] = csrf;
  const res = await fetch(url, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(answer.detail || answer.title || res.statusText);
  return answer;
};

async function enrol() {
  const invitation = location.hash.slice(1);
  try {
    const options = await json('POST', '/console/api/enrol/options', { invitation });
    const credential = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) });
    await json('POST', '/console/api/enrol/verify', { invitation, credential: credential.toJSON() });
    history.replaceState(null, '', '/console/enrol');
    say('Your passkey is ready. You can sign in now.');
  } catch (err) { say('Enrolment failed: ' + err.message); }
}

async function signIn() {
  try {
    const options = await json('POST', '/console/api/sign-in/options', {});
    const credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
    await json('POST', '/console/api/sign-in/verify', { credential: credential.toJSON() });
    await home();
  } catch (err) { say('Sign-in failed: ' + err.message); }
}

async function home() {
  let me;
  try { me = await json('GET', '/console/api/me'); } catch { me = undefined; }
  document.getElementById('signed-out').hidden = me !== undefined;
  document.getElementById('signed-in').hidden = me === undefined;
  if (!me) return;
  document.getElementById('who').textContent = me.principal.name;
  const list = document.getElementById('pending');
  list.replaceChildren();
  try {
    const { requests } = await json('GET', '/v1/requests?state=pending');
    for (const r of requests) {
      const item = document.createElement('li');
      item.textContent = r.id + ' · ' + r.privilege + ' · ' + (r.ticket ?? 'no ticket') + ' · ' + r.justification;
      list.append(item);
    }
    if (requests.length === 0) {
      const item = document.createElement('li');
      item.textContent = 'None';
      list.append(item);
    }
  } catch (err) { say('Could not read requests: ' + err.message); }
  document.getElementById('sign-out').onclick = async () => {
    await json('POST', '/console/api/sign-out', {}, me.csrf).catch(() => undefined);
    say('Signed out.');
    await home();
  };
}

const enrolButton = document.getElementById('enrol');
if (enrolButton) enrolButton.addEventListener('click', enrol);
const signInButton = document.getElementById('sign-in');
if (signInButton) { signInButton.addEventListener('click', signIn); home(); }
`;
