// The peer of the token-endpoint benchmark: panva's oidc-provider in its own process, set up as
// Tether's token endpoint is used — private_key_jwt client authentication, DPoP required
// (`dpop_bound_access_tokens`), refresh tokens rotated and bound to the DPoP key, client
// credentials enabled, RFC 9068 JWT access tokens signed with Ed25519 (what a PEP checks
// locally, as Tether's are). Its default in-memory adapter: nothing it issues is persisted.
import { createServer } from 'node:http';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';
import { serveParent } from './processes.mjs';

/** The resource server the tokens are for (a resource indicator makes them JWTs). */
export const PEER_RESOURCE = 'https://api.bench.example';
const CLIENT_ID = 'bench-client';
const ACCOUNT = 'bench-account';

let provider;
let server;

// The default in-memory adapter keeps at most 1000 entries (a two-generation LRU): every grant
// writes its DPoP and assertion jtis there, so after a few hundred grants it drops the grants
// and refresh tokens the clients still hold. The same adapter, with room for the whole run.
const storage = new LRU({ maxSize: 10_000_000 });
const adapter = (model) => new MemoryAdapter(model, storage);

async function signingKeys() {
  // RS256 is the provider's required default (ID tokens); EdDSA signs the access tokens.
  const ed = await generateKeyPair('Ed25519', { extractable: true });
  const rsa = await generateKeyPair('RS256', { extractable: true });
  const edJwk = await exportJWK(ed.privateKey);
  const rsaJwk = await exportJWK(rsa.privateKey);
  return [
    { ...edJwk, alg: 'EdDSA', use: 'sig', kid: await calculateJwkThumbprint(edJwk) },
    { ...rsaJwk, alg: 'RS256', use: 'sig', kid: await calculateJwkThumbprint(rsaJwk) },
  ];
}

function configuration(clientJwk, keys) {
  return {
    clients: [
      {
        client_id: CLIENT_ID,
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'EdDSA',
        jwks: { keys: [clientJwk] },
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
        response_types: ['code'],
        redirect_uris: ['https://client.bench.example/cb'],
        dpop_bound_access_tokens: true,
        scope: 'openid offline_access api:read',
      },
    ],
    jwks: { keys },
    scopes: ['openid', 'offline_access', 'api:read'],
    adapter,
    findAccount: (_ctx, accountId) => ({ accountId, claims: () => ({ sub: accountId }) }),
    rotateRefreshToken: true,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      dPoP: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => PEER_RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'api:read',
          accessTokenFormat: 'jwt',
          accessTokenTTL: 300,
          jwt: { sign: { alg: 'EdDSA' } },
        }),
      },
    },
  };
}

serveParent(
  {
    /** `{ port, clientJwk }` (the client's public key): starts the provider. */
    async start({ port, clientJwk }) {
      const issuer = `http://127.0.0.1:${port}`;
      provider = new Provider(issuer, configuration(clientJwk, await signingKeys()));
      // Its warnings (in-memory adapter, dev keys) are not what is measured.
      provider.on('server_error', (_ctx, err) => process.stderr.write(`server_error ${err.stack}\n`));
      provider.on('grant.error', (_ctx, err) =>
        process.stderr.write(`grant.error ${err.error_detail ?? err.message}\n`),
      );
      server = createServer(provider.callback());
      await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
      return { type: 'started', issuer, tokenUrl: `${issuer}/token`, clientId: CLIENT_ID };
    },

    /**
     * `{ jkts }`: one grant and refresh token per DPoP key thumbprint, as an authorization-code
     * flow with offline_access would leave them (bound to that key, as for a DPoP client).
     */
    async refreshTokens({ jkts }) {
      const client = await provider.Client.find(CLIENT_ID);
      const tokens = [];
      for (const jkt of jkts) {
        const grant = new provider.Grant({ accountId: ACCOUNT, clientId: CLIENT_ID });
        grant.addOIDCScope('offline_access');
        grant.addResourceScope(PEER_RESOURCE, 'api:read');
        const grantId = await grant.save();
        const token = new provider.RefreshToken({
          accountId: ACCOUNT,
          client,
          grantId,
          gty: 'authorization_code',
          scope: 'offline_access api:read',
          resource: PEER_RESOURCE,
          jkt,
        });
        tokens.push(await token.save());
      }
      return { type: 'refresh-tokens', tokens };
    },
  },
  async () => {
    await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
  },
);
