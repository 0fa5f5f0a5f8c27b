// One request of a session's holder decided by an enforcer: a fresh DPoP proof for
// `GET <audience>/status`, the action and resource the benchmark privilege grants.

import { REQUIREMENT } from '../../bench/lib/broker.mjs';
import { mintProofs } from '../../bench/lib/proofs.mjs';

const PATH = '/status';

/** `session` is what BenchTenant.session() answers. */
export async function decide(enforcer, audience, session) {
  const [proof] = await mintProofs(session, {
    method: 'GET',
    url: `${audience}${PATH}`,
    accessToken: session.token,
    count: 1,
  });
  return enforcer.authorize({
    method: 'GET',
    url: PATH,
    headers: { authorization: `DPoP ${session.token}`, dpop: proof },
    ...REQUIREMENT,
  });
}
