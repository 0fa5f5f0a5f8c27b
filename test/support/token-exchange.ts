import type { LightMyRequestResponse } from 'fastify';
import { createDpopProof, generateSessionKey } from '../../packages/client/src/index.js';
import { PUBLIC_URL, type TestBroker } from './broker.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

/**
 * One RFC 8693 exchange of `subjectToken` at `POST /oauth/token`, as a workload sends it: a
 * fresh session key of its own and a DPoP proof by it; privilege `deploy` unless `form` says
 * otherwise.
 */
export async function exchangeSubjectToken(
  b: Pick<TestBroker, 'app' | 'clock'>,
  subjectToken: string,
  form: Record<string, string> = {},
): Promise<LightMyRequestResponse> {
  const key = await generateSessionKey();
  return b.app.inject({
    method: 'POST',
    url: '/oauth/token',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      dpop: await createDpopProof(key, {
        method: 'POST',
        url: `${PUBLIC_URL}/oauth/token`,
        now: b.clock.now(),
      }),
    },
    payload: new URLSearchParams({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: subjectToken,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      privilege: 'deploy',
      ...form,
    }).toString(),
  });
}
