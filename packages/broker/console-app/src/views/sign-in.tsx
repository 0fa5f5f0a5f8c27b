import { useEffect, useState } from 'preact/hooks';
import { call, getPasskey, messageOf } from '../api.js';

/**
 * Signed out: sign in with a passkey, or, when the page is opened as `/console?tenant=<name>`
 * and that tenant has one, with the company account.
 */
export function SignIn({ say, signedIn }: { say: (text: string) => void; signedIn: () => Promise<void> }) {
  const companyHref = useCompanySignIn();
  const signIn = async () => {
    try {
      const options = await call('POST', '/console/api/sign-in/options', {});
      await call('POST', '/console/api/sign-in/verify', { credential: await getPasskey(options) });
      say('');
      await signedIn();
    } catch (err) {
      say(`Sign-in failed: ${messageOf(err)}`);
    }
  };
  return (
    <section id="signed-out">
      <h2>Sign in</h2>
      <p>Sign in with the passkey you enrolled from your invitation link.</p>
      <button type="button" id="sign-in" onClick={signIn}>
        Sign in with a passkey
      </button>
      {companyHref && (
        <p id="company">
          <a id="company-sign-in" href={companyHref}>
            Sign in with your company account
          </a>
        </p>
      )}
    </section>
  );
}

/** The company sign-in link of the tenant the page names, if it has one. */
function useCompanySignIn(): string | undefined {
  const [href, setHref] = useState<string>();
  useEffect(() => {
    const tenant = new URLSearchParams(location.search).get('tenant');
    if (!tenant) return;
    call<{ oidc: boolean }>('GET', `/console/api/sign-in-methods?tenant=${encodeURIComponent(tenant)}`)
      .then(({ oidc }) => {
        if (oidc) setHref(`/console/oidc/${encodeURIComponent(tenant)}/start`);
      })
      .catch(() => undefined /* no company sign-in, then */);
  }, []);
  return href;
}
