import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DemoSeed } from '@tether-broker/broker';
import { loadIdentity, tetherHome, writeIdentity } from '@tether-broker/client';
import type { JWK } from 'jose';
import { defaultIdentityPath } from './identity.js';

/** The demo identities already on disk, by principal name: their keys are reused when still registered. */
export function knownDemoKeys(env: NodeJS.ProcessEnv): Record<string, JWK> {
  const dir = join(tetherHome(env), 'demo');
  if (!existsSync(dir)) return {};
  const keys: Record<string, JWK> = {};
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    try {
      keys[file.slice(0, -'.json'.length)] = loadIdentity(join(dir, file)).key as JWK;
    } catch {
      // Unusable: it is rewritten below with a fresh key.
    }
  }
  return keys;
}

export interface WrittenDemo {
  dir: string;
  /** Set when this run wrote `$TETHER_HOME/identity.json` (only ever when it did not exist). */
  defaultIdentity: string | undefined;
}

/**
 * Writes each demo principal's identity (0600) to `$TETHER_HOME/demo/<name>.json`, those of the
 * MSP demo (provider and customers) included, and the demo tenant admin's to
 * `$TETHER_HOME/identity.json` if there is none yet: an existing default identity is never replaced.
 */
export function writeDemoIdentities(seed: DemoSeed, brokerUrl: string, env: NodeJS.ProcessEnv): WrittenDemo {
  const dir = join(tetherHome(env), 'demo');
  let defaultIdentity: string | undefined;
  for (const { name, tenant, principal, key } of [...seed.identities, ...seed.msp.identities]) {
    const identity = {
      broker: brokerUrl,
      tenant: tenant.id,
      principal: principal.id,
      key: key as Record<string, unknown>,
    };
    writeIdentity(join(dir, `${name}.json`), identity);
    const fallback = defaultIdentityPath(env);
    if (name === 'admin' && tenant.id === seed.tenant.id && !existsSync(fallback)) {
      writeIdentity(fallback, identity);
      defaultIdentity = fallback;
    }
  }
  return { dir, defaultIdentity };
}
