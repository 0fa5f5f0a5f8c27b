import { useEffect, useRef, useState } from 'preact/hooks';
import { call, messageOf, setCsrf } from '../api.js';
import type { Me } from '../types.js';

/**
 * Confirming the code `tether login` shows: allowed or refused by the signed-in person. An
 * answer given before the page knows who is signed in waits for it.
 */
export function DevicePage({ say }: { say: (text: string) => void }) {
  const [signedOut, setSignedOut] = useState(false);
  const code = useRef<HTMLInputElement>(null);
  const me = useRef<Promise<Me | undefined>>(undefined);
  if (!me.current) {
    me.current = call<Me>('GET', '/console/api/me').then(
      (who) => {
        setCsrf(who.csrf);
        return who;
      },
      () => undefined,
    );
  }
  useEffect(() => {
    me.current?.then((who) => setSignedOut(who === undefined));
  }, []);

  const answer = async (allow: boolean) => {
    if (!(await me.current)) return;
    try {
      const r = await call<{ state: string }>('POST', '/console/api/device', {
        user_code: code.current?.value ?? '',
        allow,
      });
      say(
        r.state === 'approved'
          ? 'Signed in: you can go back to the terminal.'
          : 'Refused: that sign-in will not happen.',
      );
    } catch (err) {
      say(`Could not confirm the code: ${messageOf(err)}`);
    }
  };

  return (
    <section>
      <h2>Sign in a command line</h2>
      <p>
        A terminal running <code>tether login</code> shows a code. Confirm it here only if you started that
        sign-in yourself, just now.
      </p>
      <p id="device-signed-out" hidden={!signedOut}>
        <a href="/console">Sign in to the console first</a>, then come back to this page.
      </p>
      <form
        id="device-form"
        onSubmit={(event) => {
          event.preventDefault();
          void answer(true);
        }}
      >
        <label for="device-code">Code</label>{' '}
        <input
          id="device-code"
          name="code"
          ref={code}
          autocomplete="off"
          maxLength={32}
          required
          defaultValue={new URLSearchParams(location.search).get('code') ?? ''}
        />
        <button type="submit" id="device-allow">
          Allow this sign-in
        </button>
        <button type="button" id="device-deny" onClick={() => void answer(false)}>
          Refuse
        </button>
      </form>
    </section>
  );
}
