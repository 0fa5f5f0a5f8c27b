/**
 * `--customer <name>`: a provider operator acting in one of their provider's customer tenants,
 * as their seat there. The seat has no key of its own: the broker verifies its client
 * assertions with the operator's keys, so the seat identity is the operator's identity with the
 * seat's tenant and principal. Only those two ids are cached on disk, never the key again.
 */

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tetherHome } from '@tether-broker/client';
import type { IdentityFile } from '@tether-broker/protocol';
import { NAME_PATTERN } from '@tether-broker/protocol';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { CliError, EXIT } from './errors.js';

/** What `$TETHER_HOME/seats/<broker-host>/<customer>.json` holds (0600): no key. */
export interface CachedSeat {
  broker: string;
  customer: string;
  /** The customer tenant's id. */
  tenant: string;
  /** The seat principal's id in it. */
  principal: string;
  /** Whose seat it is: the operator's tenant and principal ids. */
  operator: { tenant: string; principal: string };
}

const NAME = new RegExp(NAME_PATTERN);

/** Reads `--customer`: a tenant name as the broker names them (and safe as a file name). */
export function parseCustomer(text: string): string {
  if (!NAME.test(text) || text.includes('..'))
    throw new InvalidArgumentError('must be a customer tenant name (lower-case letters, digits, . _ @ -)');
  return text;
}

/** The commands declared with {@link withCustomerSeat}: only they act in a seat. */
const SEAT_COMMANDS = new WeakSet<Command>();

/**
 * Declares `--customer <name>` on a verb that acts as the requester: with it, the verb acts in
 * that customer's tenant as the operator's seat there (see {@link Session}). Other verbs that
 * take a `--customer` (e.g. `relationship propose`) mean something else by it and are not marked.
 */
export function withCustomerSeat(command: Command): Command {
  SEAT_COMMANDS.add(command);
  return command.option(
    '--customer <name>',
    "act in this customer's tenant, as your seat there (a provider's operator; `tether customers` lists where)",
    parseCustomer,
  );
}

/** The customer a command acts in, when it was declared with {@link withCustomerSeat} and given one. */
export function seatCustomerOf(command: Command): string | undefined {
  if (!SEAT_COMMANDS.has(command)) return undefined;
  return command.opts<{ customer?: string }>().customer;
}

/** Where the seat of `customer` at `broker` is cached: `$TETHER_HOME/seats/<broker-host>/<customer>.json`. */
export function seatPath(broker: string, customer: string, env: NodeJS.ProcessEnv): string {
  let host: string;
  try {
    host = new URL(broker).host;
  } catch {
    throw new CliError(
      'identity_unusable',
      `the identity's broker URL ${JSON.stringify(broker)} is not a URL`,
      EXIT.unreachable,
    );
  }
  // A host is letters, digits, dots, dashes, brackets and a port colon: nothing that leaves the folder.
  return join(
    tetherHome(env),
    'seats',
    host.replace(/[^a-zA-Z0-9.[\]:-]/g, '_'),
    `${parseCustomer(customer)}.json`,
  );
}

/** The cached seat of this operator in `customer`, if there is one (another operator's is ignored). */
export function readSeat(
  home: IdentityFile,
  customer: string,
  env: NodeJS.ProcessEnv,
): CachedSeat | undefined {
  const path = seatPath(home.broker, customer, env);
  if (!existsSync(path)) return undefined;
  try {
    const seat = JSON.parse(readFileSync(path, 'utf8')) as Partial<CachedSeat>;
    const valid =
      seat.broker === home.broker &&
      seat.customer === customer &&
      typeof seat.tenant === 'string' &&
      typeof seat.principal === 'string' &&
      seat.operator?.tenant === home.tenant &&
      seat.operator?.principal === home.principal;
    return valid ? (seat as CachedSeat) : undefined;
  } catch {
    // Unreadable or not JSON: the seat is taken again and the file rewritten.
    return undefined;
  }
}

/** Caches a seat (0600, in a 0700 folder), replaced atomically like identity files. */
export function writeSeat(seat: CachedSeat, env: NodeJS.ProcessEnv): string {
  const path = seatPath(seat.broker, seat.customer, env);
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(seat, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(temporary, path);
  return path;
}

/** Forgets a cached seat (the broker no longer knows it). */
export function forgetSeat(home: IdentityFile, customer: string, env: NodeJS.ProcessEnv): void {
  rmSync(seatPath(home.broker, customer, env), { force: true });
}

/** The identity a seat acts with: the operator's broker and key, the seat's tenant and principal. */
export function seatIdentity(
  home: IdentityFile,
  seat: Pick<CachedSeat, 'tenant' | 'principal'>,
): IdentityFile {
  if (home.login)
    throw new CliError(
      'identity_unusable',
      'a `tether login` sign-in cannot act in a customer tenant: --customer needs an identity file with your registered key',
      EXIT.unreachable,
      'use --identity <file> or --as <principal> with a key-holding identity',
    );
  return { broker: home.broker, tenant: seat.tenant, principal: seat.principal, key: home.key };
}
