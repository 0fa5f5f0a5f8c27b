import { call, createPasskey, messageOf } from '../api.js';

/** Enrolment: the person creates their passkey from the one-time link (its token in the hash). */
export function EnrolPage({ say }: { say: (text: string) => void }) {
  const enrol = async () => {
    const invitation = location.hash.slice(1);
    try {
      const options = await call('POST', '/console/api/enrol/options', { invitation });
      const credential = await createPasskey(options);
      await call('POST', '/console/api/enrol/verify', { invitation, credential });
      history.replaceState(null, '', '/console/enrol');
      say('Your passkey is ready. You can sign in now.');
    } catch (err) {
      say(`Enrolment failed: ${messageOf(err)}`);
    }
  };
  return (
    <section>
      <h2>Create your passkey</h2>
      <p>
        Your administrator invited you to Tether. Create a passkey on this device: it stays on the device, and
        you sign in with it.
      </p>
      <button type="button" id="enrol" onClick={enrol}>
        Create a passkey
      </button>
      <p>
        <a href="/console">Go to sign in</a>
      </p>
    </section>
  );
}
