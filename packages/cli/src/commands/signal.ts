import type { TransmitterList, TransmitterView } from '@tether-broker/protocol/api';
import type { Command } from 'commander';
import { seg } from '../api.js';
import { CliError, EXIT } from '../errors.js';
import { printJson, renderFields, renderTable, say, shortTime } from '../output.js';
import { Session } from '../session.js';
import { readJwksFile } from './trust.js';

interface TransmitterFlags {
  issuer: string;
  audience?: string;
  jwksUri?: string;
  jwksFile?: string;
}

/** Flags → the API's body (POST /v1/signal-transmitters). */
export function transmitterBody(name: string, flags: TransmitterFlags): Record<string, unknown> {
  if ((flags.jwksUri === undefined) === (flags.jwksFile === undefined)) {
    throw new CliError(
      'invalid_argument',
      "give the transmitter's keys: --jwks-uri or --jwks-file (one)",
      EXIT.usage,
    );
  }
  return {
    name,
    issuer: flags.issuer,
    ...(flags.audience === undefined ? {} : { audience: flags.audience }),
    ...(flags.jwksUri === undefined ? {} : { jwks_uri: flags.jwksUri }),
    ...(flags.jwksFile === undefined ? {} : { jwks: readJwksFile(flags.jwksFile) }),
  };
}

function keysText(t: TransmitterView): string {
  return t.jwks_uri ?? `inline, ${t.jwks?.keys.length ?? 0} key(s)`;
}

function transmitterDetails(t: TransmitterView): string {
  return renderFields([
    ['transmitter', `${t.name} (${t.id})`],
    ['issuer', t.issuer],
    ['audience', t.audience],
    ['keys', keysText(t)],
    ['push to', `${t.push_url} (application/secevent+jwt)`],
    ['created', shortTime(t.created_at)],
  ]);
}

/**
 * `tether signal transmitters add|list|show|remove`: the CAEP transmitters (identity providers)
 * whose Security Event Tokens the broker accepts at POST /v1/signals.
 */
export function registerSignal(program: Command): void {
  const signal = program.command('signal').description('continuous evaluation signals (CAEP)');
  const transmitters = signal
    .command('transmitters')
    .description('manage the CAEP transmitters whose signals (SETs) the broker accepts');
  transmitters
    .command('add')
    .description("accept a transmitter's signed SETs; print where it pushes them")
    .argument('<name>', 'lower-case name, unique in the tenant')
    .requiredOption('--issuer <url>', 'the exact iss of its SETs')
    .option(
      '--audience <aud>',
      "the aud its SETs carry (default the broker's public URL; must be unique per issuer across tenants)",
    )
    .option('--jwks-uri <url>', 'where it publishes its keys (https; http on loopback only)')
    .option('--jwks-file <file>', 'its public keys, a JWKS or JWK file, stored inline')
    .action(async (name: string, flags: TransmitterFlags, command: Command) => {
      const body = transmitterBody(name, flags);
      const session = new Session(command);
      const created = await session.call<TransmitterView>('POST', '/v1/signal-transmitters', body);
      if (session.json) return printJson(created);
      say(transmitterDetails(created));
    });
  transmitters
    .command('list')
    .description('list the transmitters of the tenant')
    .action(async (_f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<TransmitterList>('GET', '/v1/signal-transmitters');
      if (session.json) return printJson(answer);
      if (answer.transmitters.length === 0) return say('no signal transmitters');
      say(
        renderTable(
          ['NAME', 'ISSUER', 'AUDIENCE', 'KEYS', 'ID'],
          answer.transmitters.map((t) => [t.name, t.issuer, t.audience, keysText(t), t.id]),
        ),
      );
    });
  transmitters
    .command('show')
    .description('show a transmitter')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<TransmitterView>('GET', `/v1/signal-transmitters/${seg(ref)}`);
      if (session.json) return printJson(answer);
      say(transmitterDetails(answer));
    });
  transmitters
    .command('remove')
    .description('stop accepting a transmitter’s signals (what they changed stays)')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<{ deleted: boolean }>(
        'DELETE',
        `/v1/signal-transmitters/${seg(ref)}`,
      );
      session.emit(answer, () => say(`removed signal transmitter ${ref}`));
    });
}
