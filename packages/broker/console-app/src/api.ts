/**
 * The console's calls: the same `/v1` API the CLI uses, with the console cookie and, for any
 * change, the session's CSRF token; and the passkey ceremonies of `/console/api`.
 */

/** A refusal from the broker: its problem's `detail` (or title) as message, its code and status. */
export class ApiError extends Error {
  readonly code: string | undefined;
  readonly status: number;

  constructor(message: string, code: string | undefined, status: number) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
  }
}

let csrf = '';

/** The CSRF token of the signed-in console session, sent with every change. */
export function setCsrf(token: string): void {
  csrf = token;
}

/** Calls the broker; resolves to the answer's JSON, rejects with an `ApiError`. */
export async function call<T>(method: 'GET' | 'POST', url: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-tether-csrf'] = csrf;
  const res = await fetch(url, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? null : JSON.stringify(body),
  });
  const answer = (await res.json().catch(() => ({}))) as { detail?: string; title?: string; code?: string };
  if (!res.ok) throw new ApiError(answer.detail || answer.title || res.statusText, answer.code, res.status);
  return answer as T;
}

/** The message of anything thrown, for the status line. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Creates a passkey from the broker's creation options (enrolment). */
export async function createPasskey(options: unknown): Promise<unknown> {
  const credential = (await navigator.credentials.create({
    publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(
      options as PublicKeyCredentialCreationOptionsJSON,
    ),
  })) as PublicKeyCredential;
  return credential.toJSON();
}

/** Signs with a passkey from the broker's request options (sign-in, verification). */
export async function getPasskey(options: unknown): Promise<unknown> {
  const credential = (await navigator.credentials.get({
    publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(
      options as PublicKeyCredentialRequestOptionsJSON,
    ),
  })) as PublicKeyCredential;
  return credential.toJSON();
}

/** Verifies the person again with their passkey (a privilege may ask for a recent verification). */
async function verifyAgain(): Promise<void> {
  const options = await call('POST', '/console/api/verify/options', {});
  await call('POST', '/console/api/verify/verify', { credential: await getPasskey(options) });
}

/**
 * A call that, when the broker asks for a fresh verification, verifies and tries once more;
 * `say` tells the person why their passkey is asked for.
 */
export async function callVerified<T>(url: string, body: unknown, say: (text: string) => void): Promise<T> {
  try {
    return await call<T>('POST', url, body);
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== 'fresh_verification_required') throw err;
    say('This approval needs your passkey again.');
    await verifyAgain();
    return call<T>('POST', url, body);
  }
}
