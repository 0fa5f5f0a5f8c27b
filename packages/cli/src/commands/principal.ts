import { join, resolve } from 'node:path';
import { createKeyProof, tetherHome, writeIdentity } from '@tether-broker/client';
import { PRINCIPAL_KINDS, ROLES } from '@tether-broker/protocol';
import type { KeyView, PrincipalList, PrincipalView } from '@tether-broker/protocol/api';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { JWK } from 'jose';
import { seg } from '../api.js';
import { collectAttribute } from '../attributes.js';
import { CliError, EXIT, nothingToChange } from '../errors.js';
import { assertWritable, newEd25519, readPublicJwk } from '../keys.js';
import { attributes, list, printJson, renderTable, say } from '../output.js';
import { principalDetails } from '../render.js';
import { Session } from '../session.js';

export interface PrincipalFlags {
  kind?: string;
  role?: string[];
  roles?: boolean;
  attr?: Record<string, string>;
  keyFile?: string;
  out?: string;
  force?: boolean;
  contractStarts?: string;
  contractEnds?: string;
  /** False with --no-contract. */
  contract?: boolean;
}

/** A contract time as the API takes it (RFC 3339), from anything `Date` reads. */
function contractTime(text: string): string {
  const ms = Date.parse(text);
  if (Number.isNaN(ms))
    throw new CliError('invalid_argument', `${JSON.stringify(text)} is not a date/time`, EXIT.usage);
  return new Date(ms).toISOString();
}

/**
 * `--contract-starts` / `--contract-ends` as the body's `contract` (a side not given is left as
 * it is), `null` for `--no-contract`, or nothing when none is given.
 */
export function contractBody(flags: PrincipalFlags): {
  contract?: { starts_at?: string; ends_at?: string } | null;
} {
  const given = flags.contractStarts !== undefined || flags.contractEnds !== undefined;
  if (flags.contract === false) {
    if (given)
      throw new CliError(
        'invalid_argument',
        '--no-contract cannot be combined with --contract-ends or --contract-starts',
        EXIT.usage,
      );
    return { contract: null };
  }
  if (!given) return {};
  return {
    contract: {
      ...(flags.contractStarts === undefined ? {} : { starts_at: contractTime(flags.contractStarts) }),
      ...(flags.contractEnds === undefined ? {} : { ends_at: contractTime(flags.contractEnds) }),
    },
  };
}

function collectRole(value: string, previous: string[] | undefined): string[] {
  if (!(ROLES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`${JSON.stringify(value)} is not a role; roles: ${ROLES.join(', ')}`);
  }
  return [...(previous ?? []), value];
}

const kindOption = () =>
  new Option('--kind <kind>', 'what the principal is').choices(PRINCIPAL_KINDS).makeOptionMandatory();
const roleOption = () =>
  new Option('--role <role>', `a role: ${ROLES.join(', ')} (repeatable)`).argParser(collectRole);
const attrOption = () =>
  new Option('--attr <key=value>', 'an attribute policies can see (repeatable)').argParser(collectAttribute);
const contractEndsOption = () =>
  new Option(
    '--contract-ends <time>',
    'end of the contract window (ISO 8601): no session lasts past it, and at it every session ends',
  );
const contractStartsOption = () =>
  new Option(
    '--contract-starts <time>',
    'start of the contract window (ISO 8601): nothing may be requested before it',
  );

/** `tether principal …`: who may act in the tenant (/v1/principals). */
export function registerPrincipal(program: Command): void {
  const principal = program
    .command('principal')
    .description('manage principals: people, services, pipelines, agents');
  principal
    .command('list')
    .description('list the principals of the tenant')
    .action(async (_f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<PrincipalList>('GET', '/v1/principals');
      session.emit(answer, ({ principals }) =>
        say(
          renderTable(
            ['NAME', 'KIND', 'ROLES', 'ENABLED', 'ATTRIBUTES', 'ID'],
            principals.map((p) => [
              p.name,
              p.kind,
              list(p.roles),
              p.enabled ? 'yes' : 'no',
              attributes(p.attributes),
              p.id,
            ]),
          ),
        ),
      );
    });
  principal
    .command('invite')
    .description('make a one-time link with which a person enrols their own passkey for the console')
    .argument('<ref>', 'name or id of a human principal')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<{ url: string; expires_at: string }>(
        'POST',
        `/v1/principals/${seg(ref)}/invitations`,
        {},
      );
      session.emit(answer, (a) =>
        say(`Send this link to ${ref} (used once, until ${a.expires_at}):\n${a.url}`),
      );
    });
  principal
    .command('show')
    .description('show a principal and its keys')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      session.emit(await session.call<PrincipalView>('GET', `/v1/principals/${seg(ref)}`), (p) =>
        say(principalDetails(p)),
      );
    });
  principal
    .command('create')
    .description('create a principal (with a public key from --key-file, or none yet)')
    .argument('<name>', 'lower-case name, unique in the tenant')
    .addOption(kindOption())
    .addOption(roleOption())
    .addOption(attrOption())
    .addOption(contractEndsOption())
    .addOption(contractStartsOption())
    .option('--key-file <file>', 'a public JWK to register')
    .action(async (name: string, flags: PrincipalFlags, command: Command) => {
      const session = new Session(command);
      const keys = flags.keyFile ? [readPublicJwk(flags.keyFile)] : [];
      const created = await session.call<PrincipalView>(
        'POST',
        '/v1/principals',
        newPrincipalBody(name, flags, keys),
      );
      session.emit(created, (p) => say(principalDetails(p)));
    });
  registerChanges(principal);
  registerKeys(principal);
}

function newPrincipalBody(name: string, flags: PrincipalFlags, keys: Record<string, unknown>[]) {
  return {
    name,
    kind: flags.kind,
    ...(flags.role ? { roles: flags.role } : {}),
    ...(flags.attr ? { attributes: flags.attr } : {}),
    ...(keys.length > 0 ? { keys } : {}),
    ...contractBody(flags),
  };
}

async function patch(command: Command, ref: string, changes: Record<string, unknown>): Promise<void> {
  const session = new Session(command);
  const answer = await session.call<PrincipalView>('PATCH', `/v1/principals/${seg(ref)}`, changes);
  session.emit(answer, (p) => say(principalDetails(p)));
}

function registerChanges(principal: Command): void {
  principal
    .command('update')
    .description(
      'change roles, attributes or the contract window (each given list replaces the old one; ' +
        "a contract end moved into the past ends the principal's sessions at once)",
    )
    .argument('<ref>', 'name or id')
    .addOption(roleOption())
    .option('--no-roles', 'remove all roles')
    .addOption(attrOption())
    .addOption(contractEndsOption())
    .addOption(contractStartsOption())
    .option('--no-contract', 'remove the contract window')
    .action((ref: string, flags: PrincipalFlags, command: Command) => {
      const changes: Record<string, unknown> = {};
      if (flags.role) changes.roles = flags.role;
      else if (flags.roles === false) changes.roles = [];
      if (flags.attr) changes.attributes = flags.attr;
      Object.assign(changes, contractBody(flags));
      if (Object.keys(changes).length === 0) throw nothingToChange();
      return patch(command, ref, changes);
    });
  principal
    .command('disable')
    .description('disable a principal: it can no longer authenticate')
    .argument('<ref>', 'name or id')
    .action((ref: string, _f: unknown, command: Command) => patch(command, ref, { enabled: false }));
  principal
    .command('enable')
    .description('enable a disabled principal')
    .argument('<ref>', 'name or id')
    .action((ref: string, _f: unknown, command: Command) => patch(command, ref, { enabled: true }));
}

function registerKeys(principal: Command): void {
  principal
    .command('add-key')
    .description('register a public key (JWK file) for a principal')
    .argument('<ref>', 'name or id')
    .argument('<jwk-file>', 'a file holding the public JWK')
    .action(async (ref: string, file: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const jwk = readPublicJwk(file);
      // Adding a key to yourself needs a proof made with the identity's own registered key
      // (a broker-API token alone is not enough); an admin adding one to someone else does not.
      const target = await session.lookup<PrincipalView>('GET', `/v1/principals/${seg(ref)}`);
      const { identity } = session;
      const proof =
        target.id === identity.principal
          ? await createKeyProof(identity, { brokerUrl: session.client().baseUrl, newKey: jwk as JWK })
          : undefined;
      const key = await session.call<KeyView>('POST', `/v1/principals/${seg(target.id)}/keys`, {
        jwk,
        ...(proof ? { proof } : {}),
      });
      session.emit(key, (k) => say(`registered key ${k.kid} for ${ref}`));
    });
  principal
    .command('remove-key')
    .description("remove one of a principal's keys")
    .argument('<ref>', 'name or id')
    .argument('<kid>', 'the key id (see `principal show`)')
    .action(async (ref: string, kid: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<{ deleted: boolean }>(
        'DELETE',
        `/v1/principals/${seg(ref)}/keys/${seg(kid)}`,
      );
      session.emit(answer, () => say(`removed key ${kid} from ${ref}`));
    });
  principal
    .command('keygen')
    .description('create a principal with a fresh Ed25519 key, and write its identity file (0600)')
    .argument('<name>', 'lower-case name, unique in the tenant')
    .addOption(kindOption())
    .addOption(roleOption())
    .addOption(attrOption())
    .addOption(contractEndsOption())
    .addOption(contractStartsOption())
    .option('--out <file>', 'where to write the identity (default: $TETHER_HOME/<name>.json)')
    .option('--force', 'overwrite an existing file')
    .action(keygen);
}

async function keygen(name: string, flags: PrincipalFlags, command: Command): Promise<void> {
  const session = new Session(command);
  const out = flags.out ? resolve(flags.out) : join(tetherHome(session.env), `${name}.json`);
  assertWritable(out, flags.force);
  const { privateJwk, publicJwk } = await newEd25519();
  const created = await session.call<PrincipalView>(
    'POST',
    '/v1/principals',
    newPrincipalBody(name, flags, [publicJwk as Record<string, unknown>]),
  );
  const { broker, tenant } = session.identity;
  writeIdentity(out, { broker, tenant, principal: created.id, key: privateJwk as Record<string, unknown> });
  if (session.json) return printJson(created);
  say(principalDetails(created));
  say(`\nidentity written to ${out} (0600); act as ${name} with: tether whoami --identity ${out}`);
}
