import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { writeIdentity } from '@tether-broker/client';
import type { Command } from 'commander';
import { CliError, EXIT } from '../errors.js';
import { defaultIdentityPath, type GlobalOptions } from '../identity.js';
import { io } from '../io.js';
import { loadBroker } from '../optional.js';
import { printJson, renderFields, say } from '../output.js';
import { configFrom, describeStore, type StoreFlags, withStoreFlags } from '../store-config.js';

interface InitFlags extends StoreFlags {
  tenant: string;
  admin: string;
  displayName?: string;
  timeZone?: string;
  identityOut?: string;
  force?: boolean;
  provider?: boolean;
}

/** `tether init`: creates a tenant and its first admin, where the store is (no server needed). */
export function registerInit(program: Command): void {
  withStoreFlags(program.command('init'))
    .description('create a tenant and its first admin in the store, and write the admin identity')
    .requiredOption('--tenant <name>', 'the tenant name, e.g. acme')
    .option('--admin <name>', 'the first admin principal', 'admin')
    .option('--display-name <text>', 'a display name for the tenant')
    .option('--time-zone <zone>', 'IANA time zone the policies see (default UTC)')
    .option('--identity-out <file>', 'write the admin identity here instead of $TETHER_HOME/identity.json')
    .option('--force', 'overwrite an existing identity file')
    .option(
      '--provider',
      'make it a provider (MSP) tenant: it onboards customers and proposes relationships with them',
    )
    .action((flags: InitFlags, command: Command) => init(flags, command.optsWithGlobals<GlobalOptions>()));
}

function identityTarget(flags: InitFlags, env: NodeJS.ProcessEnv): string {
  const target = flags.identityOut ? resolve(flags.identityOut) : defaultIdentityPath(env);
  if (existsSync(target) && !flags.force) {
    throw new CliError(
      'identity_exists',
      `${target} already exists; it is not overwritten`,
      EXIT.usage,
      'write the new admin identity elsewhere with --identity-out <file>, or replace it with --force',
    );
  }
  return target;
}

async function init(flags: InitFlags, globals: GlobalOptions): Promise<void> {
  const env = io().env;
  const { config } = await configFrom(flags, env, 'init');
  // Checked before anything is created: a tenant whose admin key is lost is useless.
  const target = identityTarget(flags, env);
  const { adoptAuditKeys, bootstrapTenant, loadKek, migrateToLatest, openStore, storeLocation, systemClock } =
    await loadBroker('init');
  const location = storeLocation(config);
  const store = openStore({ location });
  let boot: Awaited<ReturnType<typeof bootstrapTenant>>;
  try {
    await migrateToLatest(store);
    // The new tenant's audit chain is keyed from its first record (HMAC under the KEK's audit key),
    // not left unkeyed until a broker next starts.
    await adoptAuditKeys(store, loadKek(config), systemClock.now());
    boot = await bootstrapTenant(store, systemClock, {
      tenantName: flags.tenant,
      displayName: flags.displayName,
      timeZone: flags.timeZone,
      adminName: flags.admin,
      kind: flags.provider ? 'provider' : 'standalone',
    });
  } finally {
    await store.close();
  }
  writeIdentity(target, {
    broker: config.publicUrl,
    tenant: boot.tenant.id,
    principal: boot.admin.id,
    key: boot.adminPrivateJwk as Record<string, unknown>,
  });
  const answer = {
    tenant: boot.tenant.id,
    kind: boot.tenant.kind,
    admin: boot.admin.id,
    identity: target,
    broker: config.publicUrl,
  };
  if (globals.json) return printJson(answer);
  say(
    renderFields([
      ['tenant', `${boot.tenant.name} (${boot.tenant.id})${flags.provider ? ', a provider' : ''}`],
      ['admin', `${boot.admin.name} (${boot.admin.id})`],
      ['identity', `${target} (0600; keep it safe, it holds the admin's private key)`],
      ['store', describeStore(config, location)],
      ['broker', config.publicUrl],
    ]),
  );
  const identityFlag = flags.identityOut ? ` --identity ${target}` : '';
  say(
    `\nnext:\n  tether server${flags.data ? ` --data ${flags.data}` : ''}   # start the broker on this store`,
  );
  say(`  tether whoami${identityFlag}`);
  say(`  tether principal keygen <name> --kind human${identityFlag}   # onboard someone`);
  say(`  tether policy set <policies.cedar>${identityFlag}`);
  if (flags.provider)
    say(
      `  tether customer add <customer> --admin <name> --admin-key <public-jwk-file>${identityFlag}   # onboard a customer`,
    );
}
