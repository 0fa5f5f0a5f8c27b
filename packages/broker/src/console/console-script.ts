/**
 * The console's one script, served as `/console/console.js` under a CSP that allows no inline
 * script. Plain DOM, no framework: every value from the API is written with `textContent` (or
 * as an attribute value), never parsed as HTML, so a requester's reason is shown as text.
 * Every action is a call to the same `/v1` API the CLI uses, with the session's CSRF token.
 *
 * Views, by what the signed-in principal may do:
 * - everyone: ask for a privilege, their requests, their live sessions (end one);
 * - approvers: requests waiting for a decision by others, with requester, privilege (actions,
 *   resources), ticket, reason and duration; approve or deny with a comment;
 * - admins and auditors: live sessions with their enforcement receipts, revoke (admins), and
 *   verifying the audit trail.
 */
export const CONSOLE_JS = `const status = document.getElementById('status');
const say = (text) => { status.textContent = text; };
let csrf = '';
const call = async (method, url, body) => {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-tether-csrf'] = csrf;
  const res = await fetch(url, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(answer.detail || answer.title || res.statusText), { code: answer.code });
  return answer;
};
/** Verifies the person again with their passkey (a privilege may ask for a recent verification). */
const verifyAgain = async () => {
  const options = await call('POST', '/console/api/verify/options', {});
  const credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
  await call('POST', '/console/api/verify/verify', { credential: credential.toJSON() });
};
/** A call that, when the broker asks for a fresh verification, verifies and tries once more. */
const callVerified = async (method, url, body) => {
  try { return await call(method, url, body); } catch (err) {
    if (err.code !== 'fresh_verification_required') throw err;
    say('This approval needs your passkey again.');
    await verifyAgain();
    return call(method, url, body);
  }
};
/** An element with text children only: strings become text nodes, never HTML. */
const el = (tag, attrs, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'onclick') node.addEventListener('click', v); else node.setAttribute(k, String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
};
const section = (id) => document.getElementById(id);
const minutes = (s) => Math.round(s / 60) + ' min';

async function enrol() {
  const invitation = location.hash.slice(1);
  try {
    const options = await call('POST', '/console/api/enrol/options', { invitation });
    const credential = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) });
    await call('POST', '/console/api/enrol/verify', { invitation, credential: credential.toJSON() });
    history.replaceState(null, '', '/console/enrol');
    say('Your passkey is ready. You can sign in now.');
  } catch (err) { say('Enrolment failed: ' + err.message); }
}

async function signIn() {
  try {
    const options = await call('POST', '/console/api/sign-in/options', {});
    const credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
    await call('POST', '/console/api/sign-in/verify', { credential: credential.toJSON() });
    say('');
    await home();
  } catch (err) { say('Sign-in failed: ' + err.message); }
}

/** Runs an action, says how it went, and draws the views again. */
const act = (what, run) => async () => {
  try { const told = await run(); say(typeof told === 'string' ? told : what + ': done.'); } catch (err) { say(what + ' failed: ' + err.message); }
  await home();
};

function drawAsk(privileges) {
  const form = section('ask-form');
  const select = form.querySelector('#ask-privilege');
  select.replaceChildren(...privileges.map((p) => el('option', { value: p.name }, p.name)));
  form.onsubmit = (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = {
      privilege: String(data.get('privilege')),
      justification: String(data.get('justification')),
      duration: Number(data.get('duration')) * 60,
    };
    const ticket = String(data.get('ticket') || '').trim();
    if (ticket) body.ticket = ticket;
    act('Request', () => call('POST', '/v1/requests', body))();
  };
}

function requestLine(r, names, privileges) {
  const p = privileges.get(r.privilege);
  return [
    el('span', { class: 'what' }, (p ? p.name : r.privilege) + ' · ' + (r.ticket ?? 'no ticket') + ' · ' + minutes(r.duration)),
    el('span', { class: 'who' }, 'by ' + (names.get(r.principal) ?? r.principal)),
    el('span', { class: 'reason' }, r.justification),
  ];
}

function drawMine(me, requests, sessions, names, privileges) {
  const list = section('mine');
  const own = requests.filter((r) => r.principal === me.principal.id);
  list.replaceChildren(...(own.length ? own.map((r) => el('li', {}, ...requestLine(r, names, privileges), el('span', { class: 'state' }, r.state))) : [el('li', {}, 'None')]));
  const live = section('sessions');
  const mine = sessions.filter((s) => s.principal === me.principal.id && s.state === 'active');
  live.replaceChildren(...(mine.length ? mine.map((s) => el('li', {},
    el('span', { class: 'what' }, (privileges.get(s.privilege)?.name ?? s.privilege) + ' · ' + (s.ticket ?? 'no ticket') + ' · until ' + s.hard_expires_at),
    el('button', { type: 'button', onclick: act('End session', () => call('POST', '/v1/sessions/' + s.id + '/end', { reason: 'completed' })) }, 'End ' + s.id),
    el('button', { type: 'button', onclick: act('Ask for more time', () => call('POST', '/v1/sessions/' + s.id + '/extend', { by: 1800, justification: 'more time, asked in the console' })) }, '30 more minutes for ' + s.id),
  )) : [el('li', {}, 'None')]));
}

function drawDecisions(me, requests, names, privileges) {
  const list = section('pending');
  const waiting = requests.filter((r) => r.state === 'pending' && r.principal !== me.principal.id);
  list.replaceChildren(...(waiting.length ? waiting.map((r) => {
    const p = privileges.get(r.privilege);
    const comment = el('input', { type: 'text', maxlength: 2048, 'aria-label': 'Comment on ' + r.id });
    const review = (decision) => act(decision === 'approve' ? 'Approve' : 'Deny', () => callVerified('POST', '/v1/requests/' + r.id + '/' + decision, { comment: comment.value }));
    return el('li', { 'data-request': r.id },
      ...requestLine(r, names, privileges),
      el('span', { class: 'scope' }, p ? 'actions ' + p.actions.join(', ') + ' on ' + p.resources.join(', ') : ''),
      comment,
      el('button', { type: 'button', onclick: review('approve') }, 'Approve ' + r.id),
      el('button', { type: 'button', onclick: review('deny') }, 'Deny ' + r.id),
    );
  }) : [el('li', {}, 'None')]));
}

async function drawLive(me, sessions, names, privileges) {
  const list = section('live');
  const admin = me.principal.roles.includes('admin');
  const shown = [...sessions].sort((a, b) => (a.state === b.state ? 0 : a.state === 'active' ? -1 : 1));
  list.replaceChildren(...(shown.length ? shown.map((s) => {
    const receipt = el('span', { class: 'receipt', role: 'status' });
    const show = async () => {
      const r = await call('GET', '/v1/sessions/' + s.id + '/receipt');
      receipt.textContent = r.state + (r.enforced ? ' · enforced' : '') + ' · PEPs: ' + (r.peps.map((p) => p.name + (p.enforced_at ? ' at ' + p.enforced_at : '')).join(', ') || 'none') + (r.pending.length ? ' · pending: ' + r.pending.join(', ') : '');
    };
    return el('li', { 'data-session': s.id },
      el('span', { class: 'what' }, (names.get(s.principal) ?? s.principal) + ' · ' + (privileges.get(s.privilege)?.name ?? s.privilege) + ' · ' + (s.ticket ?? 'no ticket') + ' · ' + s.state + (s.end_reason ? ' (' + s.end_reason + ')' : '')),
      el('button', { type: 'button', onclick: () => show().catch((err) => say(err.message)) }, 'Receipt of ' + s.id),
      el('button', { type: 'button', onclick: () => showTrail('session=' + s.id, s.id).catch((err) => say(err.message)) }, 'Audit trail of ' + s.id),
      el('button', { type: 'button', onclick: () => showRecording(s.id).catch((err) => say(err.message)) }, 'Recording of ' + s.id),
      ...(admin && s.state === 'active' ? [el('button', { type: 'button', onclick: act('Revoke', () => call('POST', '/v1/sessions/' + s.id + '/end', { reason: 'revoked' })) }, 'Revoke ' + s.id)] : []),
      receipt,
    );
  }) : [el('li', {}, 'None')]));
  section('revoke-form').hidden = !admin;
  section('revoke-form').onsubmit = (event) => {
    event.preventDefault();
    const data = new FormData(section('revoke-form'));
    const body = { [String(data.get('kind'))]: String(data.get('value')).trim(), note: 'revoked in the console' };
    act('Revoke', async () => {
      const r = await call('POST', '/v1/sessions/revoke', body);
      return 'Revoked ' + r.revoked.length + ' session(s).';
    })();
  };
  section('trail-form').onsubmit = (event) => {
    event.preventDefault();
    const ticket = String(new FormData(section('trail-form')).get('ticket')).trim();
    showTrail('ticket=' + encodeURIComponent(ticket), 'ticket ' + ticket).catch((err) => say(err.message));
  };
  section('verify').onclick = async () => {
    try {
      const v = await call('GET', '/v1/audit/verify');
      say(v.ok ? 'The audit trail verifies: ' + v.checked + ' records checked.' : 'The audit trail does NOT verify: ' + JSON.stringify(v));
    } catch (err) { say('Verify failed: ' + err.message); }
  };
}

/** The audit records of a session or ticket, each as one line of text. */
async function showTrail(query, what) {
  const { records } = await call('GET', '/v1/audit?' + query);
  const list = section('trail');
  section('trail-title').textContent = 'Audit trail of ' + what;
  list.replaceChildren(...(records.length ? records.map((r) => el('li', {}, r.at + ' · ' + r.action + ' · ' + r.outcome + ' · by ' + r.actor)) : [el('li', {}, 'None')]));
}

/** A session's recording as plain text: terminal control sequences removed, never interpreted. */
async function showRecording(id) {
  const r = await call('GET', '/v1/sessions/' + id + '/recording');
  const text = r.cast.split('\\n').slice(1).filter(Boolean).map((line) => {
    try { const [, kind, data] = JSON.parse(line); return kind === 'o' ? data : ''; } catch { return ''; }
  }).join('')
    // CSI, OSC (BEL or ST ended) and other escapes, then any control character but newline and tab.
    .replace(/\\u001b\\[[0-?]*[ -\\/]*[@-~]/g, '')
    .replace(/\\u001b\\][^\\u0007\\u001b]*(\\u0007|\\u001b\\\\)/g, '')
    .replace(/\\u001b[@-_]/g, '')
    .replace(/[\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]/g, '');
  section('recording-title').textContent = 'Recording of ' + id + (r.intact ? '' : ' (ALTERED in the store)');
  section('recording').textContent = text;
}

async function home() {
  let me;
  try { me = await call('GET', '/console/api/me'); } catch { me = undefined; }
  section('signed-out').hidden = me !== undefined;
  section('signed-in').hidden = me === undefined;
  if (!me) return;
  csrf = me.csrf;
  document.getElementById('who').textContent = me.principal.name;
  const roles = me.principal.roles;
  section('oversight').hidden = !(roles.includes('admin') || roles.includes('auditor'));
  try {
    const [{ requests }, { sessions }, { principals }, { privileges }] = await Promise.all([
      call('GET', '/v1/requests?limit=200'),
      call('GET', '/v1/sessions?limit=100'),
      call('GET', '/v1/principals'),
      call('GET', '/v1/privileges'),
    ]);
    const names = new Map(principals.map((p) => [p.id, p.name]));
    const byId = new Map(privileges.map((p) => [p.id, p]));
    drawAsk(privileges);
    drawMine(me, requests, sessions, names, byId);
    drawDecisions(me, requests, names, byId);
    if (!section('oversight').hidden) await drawLive(me, sessions, names, byId);
  } catch (err) { say('Could not read the tenant: ' + err.message); }
  section('sign-out').onclick = async () => {
    await call('POST', '/console/api/sign-out', {}).catch(() => undefined);
    say('Signed out.');
    await home();
  };
}

async function device() {
  const form = document.getElementById('device-form');
  const code = document.getElementById('device-code');
  code.value = new URLSearchParams(location.search).get('code') || '';
  let me;
  try { me = await call('GET', '/console/api/me'); } catch { me = undefined; }
  document.getElementById('device-signed-out').hidden = me !== undefined;
  if (!me) return;
  csrf = me.csrf;
  const answer = (allow) => async () => {
    try {
      const r = await call('POST', '/console/api/device', { user_code: code.value, allow });
      say(r.state === 'approved' ? 'Signed in: you can go back to the terminal.' : 'Refused: that sign-in will not happen.');
    } catch (err) { say('Could not confirm the code: ' + err.message); }
  };
  form.onsubmit = (event) => { event.preventDefault(); answer(true)(); };
  document.getElementById('device-deny').onclick = answer(false);
}

if (document.getElementById('device-form')) device();
const enrolButton = document.getElementById('enrol');
if (enrolButton) enrolButton.addEventListener('click', enrol);
const signInButton = document.getElementById('sign-in');
if (signInButton) { signInButton.addEventListener('click', signIn); home(); }

/** The company sign-in link, when the page is opened as /console?tenant=<name> and that tenant has one. */
async function companySignIn() {
  const tenant = new URLSearchParams(location.search).get('tenant');
  const link = document.getElementById('company-sign-in');
  if (!tenant || !link) return;
  try {
    const { oidc } = await call('GET', '/console/api/sign-in-methods?tenant=' + encodeURIComponent(tenant));
    if (!oidc) return;
    link.setAttribute('href', '/console/oidc/' + encodeURIComponent(tenant) + '/start');
    section('company').hidden = false;
  } catch { /* no company sign-in, then */ }
}
companySignIn();
`;
