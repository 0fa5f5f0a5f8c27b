import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IdentityFile, PrincipalKind, Role } from '@tether-broker/protocol';
import type { FastifyInstance } from 'fastify';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { pino } from 'pino';
import { openBroker } from '../../packages/broker/src/broker.js';
import type { ConfigInput } from '../../packages/broker/src/config/config.js';
import type { BrokerContext, Caller } from '../../packages/broker/src/core/context.js';
import { ManualClock } from '../../packages/broker/src/domain/clock.js';
import { buildApp } from '../../packages/broker/src/http/app.js';
import { bootstrapTenant } from '../../packages/broker/src/records/bootstrap.js';
import { createPrincipal } from '../../packages/broker/src/records/principals.js';
import type { Store } from '../../packages/broker/src/store/database.js';
import { BrokerClient } from '../../packages/client/src/index.js';

export const PUBLIC_URL = 'http://broker.test';

/** Limits no suite reaches; the flooding tests set their own. */
export const GENEROUS_LIMITS = {
  oauthPerSource: 1_000_000,
  deliveriesPerSource: 1_000_000,
  publicPerSource: 1_000_000,
  authFailuresPerSource: 1_000_000,
  perPrincipal: 1_000_000,
  streamsPerPrincipal: 1000,
} as const;

/** A fetch that sends requests to an in-process Fastify app (no port opened). */
export function injectFetch(app: FastifyInstance): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    const response = await app.inject({
      method: (init?.method ?? 'GET') as 'GET',
      url: url.pathname + url.search,
      headers,
      ...(init?.body === undefined || init.body === null ? {} : { payload: init.body as string }),
    });
    return new Response(response.statusCode === 204 ? null : response.body, {
      status: response.statusCode,
      headers: response.headers as Record<string, string>,
    });
  }) as typeof fetch;
}

export interface TestBroker {
  ctx: BrokerContext;
  app: FastifyInstance;
  clock: ManualClock;
  /** Log lines written during the test, for secret-leak checks. */
  logs: string[];
  tenant: Caller['tenant'];
  admin: Caller;
  adminIdentity: IdentityFile;
  /** Creates a principal with a fresh key and answers a client that acts as it. */
  principal(
    name: string,
    kind?: PrincipalKind,
    roles?: Role[],
    attributes?: Record<string, string>,
  ): Promise<Actor>;
  client(identity: IdentityFile): BrokerClient;
  close(): Promise<void>;
}

export interface Actor {
  caller: Caller;
  identity: IdentityFile;
  client: BrokerClient;
}

export async function newKeyPair(): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'EdDSA' }, publicJwk };
}

/** A real broker (real store, real keys, real policy engine) on a manual clock, driven by inject. */
export async function startTestBroker(
  store: Store,
  options: {
    tenantName?: string;
    /** `provider` for an MSP's tenant (it onboards customers over the API). */
    tenantKind?: 'standalone' | 'provider';
    reuse?: Omit<TestBroker, 'close'>;
    /** Settings on top of the test defaults (ignored with `reuse`). */
    config?: Partial<ConfigInput>;
  } = {},
): Promise<TestBroker> {
  const logs: string[] = options.reuse?.logs ?? [];
  const clock = options.reuse?.clock ?? new ManualClock(Date.UTC(2026, 0, 5, 10, 0, 0));
  let ctx: BrokerContext;
  let app: FastifyInstance;
  if (options.reuse) {
    ({ ctx, app } = options.reuse);
  } else {
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) });
    ctx = await openBroker({
      config: {
        publicUrl: PUBLIC_URL,
        dataDir: mkdtempSync(join(tmpdir(), 'tether-kek-')),
        logLevel: 'debug',
        // The manual clock rarely moves a whole window: the suites would add up to any real limit.
        // test/security/flooding.test.ts sets small ones.
        limits: GENEROUS_LIMITS,
        ...options.config,
      },
      clock,
      logger,
      store,
    });
    app = await buildApp(ctx);
  }
  const boot = await bootstrapTenant(ctx.store, clock, {
    tenantName: options.tenantName ?? 'acme',
    kind: options.tenantKind ?? 'standalone',
    adminName: 'root-admin',
  });
  const admin: Caller = { principal: boot.admin, tenant: boot.tenant };
  const fetchImpl = injectFetch(app);
  const client = (identity: IdentityFile) =>
    new BrokerClient({ identity, fetch: fetchImpl, now: () => clock.now() });
  const adminIdentity: IdentityFile = {
    broker: ctx.config.publicUrl,
    tenant: boot.tenant.id,
    principal: boot.admin.id,
    key: boot.adminPrivateJwk as Record<string, unknown>,
  };
  return {
    ctx,
    app,
    clock,
    logs,
    tenant: boot.tenant,
    admin,
    adminIdentity,
    client,
    async principal(name, kind = 'human', roles = [], attributes = {}) {
      const { privateJwk, publicJwk } = await newKeyPair();
      const principal = await createPrincipal(ctx, admin, {
        name,
        kind,
        roles,
        attributes,
        keys: [publicJwk as Record<string, unknown>],
      });
      const identity: IdentityFile = {
        broker: ctx.config.publicUrl,
        tenant: boot.tenant.id,
        principal: principal.id,
        key: privateJwk as Record<string, unknown>,
      };
      return { caller: { principal, tenant: boot.tenant }, identity, client: client(identity) };
    },
    async close() {
      if (!options.reuse) await app.close();
    },
  };
}
