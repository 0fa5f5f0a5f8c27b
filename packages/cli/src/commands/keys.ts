import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BrokerConfig } from '@tether-broker/broker';
import type { Command } from 'commander';
import { formatDuration, parseDuration } from '../duration.js';
import { CliError, EXIT } from '../errors.js';
import type { GlobalOptions } from '../identity.js';
import { io } from '../io.js';
import { loadBroker } from '../optional.js';
import { list, printJson, renderFields, renderTable, say, shortTime } from '../output.js';
import { configFrom, describeStore, type StoreFlags } from '../store-config.js';

interface RotateFlags extends StoreFlags {
  overlap?: number;
}

/** Only where the store is: these verbs open it directly, like `init`. */
function withStoreLocation(command: Command): Command {
  return command
    .option('--data <dir>', 'directory of the embedded SQLite store (env TETHER_DATA; default ./.tether)')
    .option('--database <url>', 'PostgreSQL URL instead of SQLite (env DATABASE_URL)');
}

/**
 * Refuses to go on where there is no broker store, or no key-encryption key for it: opening
 * would otherwise create an empty store, or a new KEK the broker does not use.
 */
function assertStoreExists(config: BrokerConfig, location: string): void {
  if (!config.database && !existsSync(location)) {
    throw new CliError(
      'store_not_found',
      `no broker store at ${location}`,
      EXIT.usage,
      "point at the broker's data with --data <dir> (or TETHER_DATA); `tether init` creates a store",
    );
  }
  const kekFile = join(config.dataDir, 'kek');
  if (!config.kek && !existsSync(kekFile)) {
    throw new CliError(
      'kek_not_found',
      `no key-encryption key: ${kekFile} does not exist and TETHER_KEK is not set`,
      EXIT.usage,
      "run it with the broker's --data directory, or its TETHER_KEK",
    );
  }
}

/** Opens the broker's store (migrated, keys loaded) for `work`, and closes it after. */
async function withBroker<T>(
  flags: StoreFlags,
  work: (
    ctx: Awaited<ReturnType<typeof import('@tether-broker/broker').openBroker>>,
    broker: typeof import('@tether-broker/broker'),
    where: string,
  ) => Promise<T>,
): Promise<T> {
  const verb = 'keys';
  const { input, config } = await configFrom(flags, io().env, verb);
  const broker = await loadBroker(verb);
  const location = broker.storeLocation(config);
  assertStoreExists(config, location);
  // Logs go to stderr, and only what matters: stdout is the command's answer.
  const ctx = await broker.openBroker({ config: input, logger: broker.createLogger('warn', io().stderr) });
  try {
    return await work(ctx, broker, describeStore(config, location));
  } finally {
    await ctx.store.close();
  }
}

/** `tether keys …`: the broker's token-signing keys, managed where the store is (no server needed). */
export function registerKeys(program: Command): void {
  const keys = program
    .command('keys')
    .description(
      "manage the broker's token-signing keys, where its store is (a running broker picks changes up)",
    );
  withStoreLocation(keys.command('rotate'))
    .description(
      'put a new signing key in charge; the replaced keys keep verifying for the overlap, then retire',
    )
    .option(
      '--overlap <duration>',
      'how long replaced keys keep verifying, e.g. 1h (default 1h; at least the longest access-token ttl)',
      parseDuration,
    )
    .action((flags: RotateFlags, command: Command) =>
      rotate(flags, command.optsWithGlobals<GlobalOptions>()),
    );
  withStoreLocation(keys.command('list'))
    .description('list the signing keys in service (published at /.well-known/jwks.json)')
    .action((flags: StoreFlags, command: Command) =>
      listKeys(flags, command.optsWithGlobals<GlobalOptions>()),
    );
}

async function rotate(flags: RotateFlags, globals: GlobalOptions): Promise<void> {
  await withBroker(flags, async (ctx, broker, where) => {
    const overlap = flags.overlap ?? broker.DEFAULT_ROTATION_OVERLAP_SECONDS;
    const rotated = await broker.rotateSigningKey(ctx.store, ctx.kek, ctx.clock, overlap);
    const answer = {
      kid: rotated.kid,
      retiring: rotated.retiring,
      retire_at: new Date(rotated.retireAt).toISOString(),
    };
    if (globals.json) return printJson(answer);
    say(
      renderFields([
        ['new key', `${answer.kid} (signs from now on)`],
        ['retiring', list(answer.retiring)],
        [
          'retire at',
          `${shortTime(answer.retire_at)} (in ${formatDuration(overlap)}; until then they still verify)`,
        ],
        ['store', where],
      ]),
    );
    say('\na running broker picks the new key up at its next sweep (every few seconds)');
  });
}

async function listKeys(flags: StoreFlags, globals: GlobalOptions): Promise<void> {
  await withBroker(flags, async (ctx) => {
    const { keys } = ctx.keys.jwks();
    const signing = ctx.keys.signer().kid;
    const answer = { signing, keys };
    if (globals.json) return printJson(answer);
    say(
      renderTable(
        ['KID', 'ALG', 'USE'],
        keys.map((k) => [
          String(k.kid),
          String(k.alg ?? '-'),
          k.kid === signing ? 'signs and verifies' : 'verifies (retiring)',
        ]),
      ),
    );
  });
}
