import { useCallback, useEffect, useState } from 'preact/hooks';
import { type Act, actWith } from '../act.js';
import { ApiError, call, messageOf, setCsrf } from '../api.js';
import type { AccessRequest, Me, Privilege, Session, Tenant } from '../types.js';
import { Ask } from './ask.js';
import { Decisions } from './decisions.js';
import { Mine } from './mine.js';
import { Oversight } from './oversight.js';
import { SignIn } from './sign-in.js';

/**
 * The console's home: sign-in when signed out; signed in, the views of what the person may do:
 * everyone asks for privileges and sees their requests and live sessions; approvers decide
 * others' requests; admins and auditors oversee the tenant's sessions and its audit trail.
 */
export function HomePage({ say }: { say: (text: string) => void }) {
  /** undefined: not known yet; null: signed out. */
  const [me, setMe] = useState<Me | null>();
  const [tenant, setTenant] = useState<Tenant>();

  const reload = useCallback(async () => {
    let who: Me | null;
    try {
      who = await call<Me>('GET', '/console/api/me');
    } catch {
      who = null;
    }
    if (who) setCsrf(who.csrf);
    setMe(who);
    if (!who) return;
    try {
      setTenant(await readTenant());
    } catch (err) {
      say(`Could not read the tenant: ${messageOf(err)}`);
    }
  }, [say]);
  useEffect(() => {
    void reload();
  }, [reload]);

  if (me === undefined) return null;
  if (me === null) return <SignIn say={say} signedIn={reload} />;
  const signOut = async () => {
    await call('POST', '/console/api/sign-out', {}).catch(() => undefined);
    setTenant(undefined);
    say('Signed out.');
    await reload();
  };
  return <SignedIn me={me} tenant={tenant} say={say} act={actWith(say, reload)} signOut={signOut} />;
}

function SignedIn(props: {
  me: Me;
  tenant: Tenant | undefined;
  say: (text: string) => void;
  act: Act;
  signOut: () => Promise<void>;
}) {
  const { me, tenant, say, act } = props;
  const roles = me.principal.roles;
  return (
    <div id="signed-in">
      <h2>
        Signed in as <span id="who">{me.principal.name}</span>
      </h2>
      <button type="button" id="sign-out" onClick={props.signOut}>
        Sign out
      </button>
      <Ask eligible={tenant?.eligible} act={act} />
      <Mine me={me} tenant={tenant} act={act} />
      <Decisions me={me} tenant={tenant} act={act} say={say} />
      {(roles.includes('admin') || roles.includes('auditor')) && (
        <Oversight admin={roles.includes('admin')} tenant={tenant} act={act} say={say} />
      )}
    </div>
  );
}

/** What the signed-in views show, read in one go. */
async function readTenant(): Promise<Tenant> {
  const [{ requests }, { sessions }, { principals }, { privileges }, eligible] = await Promise.all([
    call<{ requests: AccessRequest[] }>('GET', '/v1/requests?limit=200'),
    call<{ sessions: Session[] }>('GET', '/v1/sessions?limit=100'),
    call<{ principals: { id: string; name: string }[] }>('GET', '/v1/principals'),
    call<{ privileges: Privilege[] }>('GET', '/v1/privileges'),
    eligiblePrivileges(),
  ]);
  return {
    requests,
    sessions,
    names: new Map(principals.map((p) => [p.id, p.name])),
    privileges: new Map(privileges.map((p) => [p.id, p])),
    eligible: eligible ?? privileges,
  };
}

/**
 * The privileges the person may ask for, as the tenant's policies decide; undefined from a
 * broker that cannot filter them yet (it refuses the query), when the ask form offers them all.
 */
async function eligiblePrivileges(): Promise<Privilege[] | undefined> {
  try {
    return (await call<{ privileges: Privilege[] }>('GET', '/v1/privileges?eligible=true')).privileges;
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) return undefined;
    throw err;
  }
}
