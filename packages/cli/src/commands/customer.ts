import { rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CustomerList, CustomerView, EligibleCustomerList } from '@tether-broker/protocol/api';
import type { Command } from 'commander';
import { assertWritable, newEd25519, readPublicJwk } from '../keys.js';
import { printJson, renderFields, say } from '../output.js';
import { customersTable, eligibleCustomersTable, principalDetails } from '../render.js';
import { Session } from '../session.js';

interface AddFlags {
  admin: string;
  adminKey: string;
  displayName?: string;
  timeZone?: string;
}

interface KeygenFlags {
  out: string;
  publicOut?: string;
  force?: boolean;
}

/** The body of `POST /v1/customers` from the flags and the admin's public JWK. */
export function newCustomerBody(name: string, flags: AddFlags, key: Record<string, unknown>) {
  return {
    name,
    ...(flags.displayName === undefined ? {} : { display_name: flags.displayName }),
    ...(flags.timeZone === undefined ? {} : { time_zone: flags.timeZone }),
    admin: { name: flags.admin, key },
  };
}

/** The human answer of `customer add`: the tenant, its admin, and what the admin does next. */
export function describeNewCustomer(made: CustomerView, broker: string): string {
  const identity = JSON.stringify({
    broker,
    tenant: made.tenant.id,
    principal: made.admin.id,
    key: '<the private JWK of --admin-key>',
  });
  return [
    renderFields([
      ['customer', `${made.tenant.name} (${made.tenant.id})`],
      ['display name', made.tenant.display_name],
      ['time zone', made.tenant.time_zone],
    ]),
    '',
    principalDetails(made.admin),
    '',
    `the customer's admin acts with this identity file (0600), holding the private half of their key:`,
    `  ${identity}`,
    'then: tether relationship propose <name> --customer ' +
      `${made.tenant.name} --groups <yours> --privileges <theirs> --ends 90d`,
  ].join('\n');
}

/** `tether customer …` (a provider's admin) and `tether customers` (a provider's operator). */
export function registerCustomer(program: Command): void {
  const customer = program
    .command('customer')
    .description("a provider's customers: onboard them (provider admin), list them");
  customer
    .command('add')
    .description(
      'onboard a customer: a tenant of its own with its first admin, whose public key the customer hands over (provider admin)',
    )
    .argument('<name>', 'the customer tenant name, e.g. acme-corp')
    .requiredOption('--admin <name>', "the customer's first admin principal")
    .requiredOption(
      '--admin-key <file>',
      "the admin's public JWK (the customer's admin makes the key pair: `tether customer keygen --out <file>`)",
    )
    .option('--display-name <text>', 'a display name for the customer')
    .option('--time-zone <zone>', 'IANA time zone its policies see (default UTC)')
    .action(async (name: string, flags: AddFlags, command: Command) => {
      const session = new Session(command);
      const key = readPublicJwk(flags.adminKey);
      const made = await session.call<CustomerView>(
        'POST',
        '/v1/customers',
        newCustomerBody(name, flags, key),
      );
      session.emit(made, (m) => say(describeNewCustomer(m, session.identity.broker)));
    });
  customer
    .command('list')
    .description("list the provider's customers (provider admin or auditor)")
    .action(async (_f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<CustomerList>('GET', '/v1/customers');
      session.emit(answer, (a) => say(customersTable(a.customers)));
    });
  customer
    .command('keygen')
    .description(
      "for a customer's future admin: make an Ed25519 key pair, write the private JWK (0600) and the public one to hand to the provider (no broker call)",
    )
    .requiredOption('--out <file>', 'where to write the private JWK (0600)')
    .option('--public-out <file>', 'where to write the public JWK (default: <out>.pub.json)')
    .option('--force', 'overwrite existing files')
    .action((flags: KeygenFlags, command: Command) =>
      keygen(flags, command.optsWithGlobals<{ json?: boolean }>().json === true),
    );

  program
    .command('customers')
    .description(
      "the customers you may ask in, and for which privileges (a provider's operator); then: tether request <privilege> --customer <name>",
    )
    .action(async (_f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<EligibleCustomerList>('GET', '/v1/seats');
      session.emit(answer, (a) => {
        say(eligibleCustomersTable(a));
        const [first] = a.customers;
        const privilege = first?.privileges[0]?.name;
        if (first && privilege)
          say(`\nask with: tether request ${privilege} --customer ${first.name} --reason "<the task>"`);
      });
    });
}

async function keygen(flags: KeygenFlags, json: boolean): Promise<void> {
  const out = resolve(flags.out);
  const publicOut = resolve(flags.publicOut ?? `${out.replace(/\.json$/, '')}.pub.json`);
  assertWritable(out, flags.force);
  assertWritable(publicOut, flags.force);
  const { privateJwk, publicJwk } = await newEd25519();
  // The broker names a key by its RFC 7638 thumbprint: the private JWK's kid already is it.
  // Replaced, never rewritten in place: an existing file's looser mode never holds the key.
  rmSync(out, { force: true });
  writeFileSync(out, `${JSON.stringify(privateJwk, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  writeFileSync(publicOut, `${JSON.stringify(publicJwk, null, 2)}\n`, { flag: flags.force ? 'w' : 'wx' });
  if (json) return printJson({ key: out, public_key: publicOut, jwk: publicJwk });
  say(
    renderFields([
      ['private key', `${out} (0600; it stays with you)`],
      ['public key', publicOut],
      ['kid', String(privateJwk.kid)],
    ]),
  );
  say(
    `\nsend ${publicOut} to your provider; their admin runs:\n  tether customer add <customer> --admin <your name> --admin-key ${publicOut}`,
  );
}
