import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  CustomerList,
  CustomerView,
  EligibleCustomerList,
  RelationshipOutcome,
  RelationshipView,
  RequestList,
  RequestView,
} from '@tether-broker/protocol/api';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { run } from '../../packages/cli/src/program.js';
import { type IdentityFile, writeIdentity } from '../../packages/client/src/index.js';
import { type Actor, injectFetch, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { describeEachStore } from '../support/stores.js';

/**
 * The MSP operating model from the CLI, run in this process against a real provider broker (its
 * calls reach the app by inject, on the broker's clock): the provider's admin onboards acme-corp
 * (whose admin made their own key pair) and proposes a relationship; acme-corp's admin accepts
 * it; the provider's operator sees where they may ask and asks in acme-corp with their own
 * identity (`--customer`); ending the relationship cancels the pending request.
 */
describeEachStore('tether customer / relationship / customers / request --customer', (fixture) => {
  let b: TestBroker;
  let home: string;
  let operator: Actor;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), { tenantName: 'msp', tenantKind: 'provider' });
    home = mkdtempSync(join(tmpdir(), 'tether-cli-msp-'));
    writeIdentity(join(home, 'msp-admin.json'), b.adminIdentity);
    operator = await b.principal('morgan');
    writeIdentity(join(home, 'morgan.json'), operator.identity);
    const admin = b.client(b.adminIdentity);
    await admin.call('POST', '/v1/groups', { name: 'operators' });
    await admin.call('PUT', '/v1/groups/operators/members/morgan');
  });
  afterEach(async () => {
    rmSync(home, { recursive: true, force: true });
    await b.close();
  });

  async function tether(
    who: string,
    ...args: string[]
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await run(['node', 'tether', '--identity', join(home, `${who}.json`), ...args], {
      stdout: { write: (chunk) => out.push(String(chunk)) },
      stderr: { write: (chunk) => err.push(String(chunk)) },
      fetch: injectFetch(b.app),
      now: () => b.clock.now(),
      env: { TETHER_HOME: home },
    });
    return { code, stdout: out.join(''), stderr: err.join('') };
  }

  /** Runs a `--json` command that must succeed, and answers its JSON. */
  async function json<T>(who: string, ...args: string[]): Promise<T> {
    const result = await tether(who, '--json', ...args);
    expect(result.code, `${args.join(' ')}\n${result.stderr}`).toBe(0);
    return JSON.parse(result.stdout) as T;
  }

  /** acme-corp onboarded from a key pair its admin made, with a privilege of its own. */
  async function onboardAcme(): Promise<CustomerView> {
    const key = join(home, 'cathy.key.json');
    const made = await json<{ public_key: string }>('msp-admin', 'customer', 'keygen', '--out', key);
    expect(statSync(key).mode & 0o777).toBe(0o600);
    const customer = await json<CustomerView>(
      'msp-admin',
      'customer',
      'add',
      'acme-corp',
      '--admin',
      'cathy',
      '--admin-key',
      made.public_key,
      '--display-name',
      'Acme Corp',
    );
    expect(customer.tenant).toMatchObject({ name: 'acme-corp', kind: 'customer', display_name: 'Acme Corp' });
    const cathy: IdentityFile = {
      broker: PUBLIC_URL,
      tenant: customer.tenant.id,
      principal: customer.admin.id,
      key: JSON.parse(readFileSync(key, 'utf8')) as Record<string, unknown>,
    };
    writeIdentity(join(home, 'cathy.json'), cathy);
    await b.client(cathy).call('POST', '/v1/privileges', {
      name: 'server-maintenance',
      actions: ['host:patch'],
      resources: ['host/app-*'],
      audiences: ['https://servers.acme-corp.example'],
      max_duration: 4 * 3600,
      approval: { approvals: 1 },
      ticket: { required: false },
    });
    return customer;
  }

  it('onboards, proposes, accepts; the operator asks in the customer tenant; ending cancels the request', async () => {
    const acme = await onboardAcme();
    const listed = await json<CustomerList>('msp-admin', 'customer', 'list');
    expect(listed.customers.map((c) => c.name)).toEqual(['acme-corp']);

    const proposed = await json<RelationshipView>(
      'msp-admin',
      'relationship',
      'propose',
      'managed-servers',
      '--customer',
      'acme-corp',
      '--groups',
      'operators',
      '--privileges',
      'server-maintenance',
      '--ends',
      '90d',
    );
    expect(proposed).toMatchObject({
      state: 'proposed',
      side: 'provider',
      groups: ['operators'],
      privileges: ['server-maintenance'],
      approvals: { customer: 1 },
      ends_at: new Date(b.clock.now() + 90 * 24 * 3600_000).toISOString(),
    });
    // Nothing is usable before the customer accepts.
    expect((await json<EligibleCustomerList>('morgan', 'customers')).customers).toEqual([]);

    const accepted = await json<RelationshipView>('cathy', 'relationship', 'accept', proposed.id);
    expect(accepted).toMatchObject({ state: 'active', side: 'customer' });
    const human = await tether('cathy', 'relationship', 'show', proposed.id);
    expect(human.stdout).toMatch(/state:\s+active since/);
    expect(human.stdout).toMatch(/customer:\s+acme-corp \(you\)/);

    const eligible = await json<EligibleCustomerList>('morgan', 'customers');
    expect(eligible.customers).toEqual([
      {
        name: 'acme-corp',
        display_name: 'Acme Corp',
        privileges: [
          { name: 'server-maintenance', relationship: 'managed-servers', ends_at: proposed.ends_at },
        ],
      },
    ]);
    expect((await tether('morgan', 'customers')).stdout).toMatch(
      /acme-corp\s+Acme Corp\s+server-maintenance\s+managed-servers/,
    );

    const asked = await json<RequestView>(
      'morgan',
      'request',
      'server-maintenance',
      '--customer',
      'acme-corp',
      '--reason',
      'patch the app servers',
    );
    expect(asked.state).toBe('pending');
    // The seat's ids are cached, 0600, without the key; the next command reuses them.
    const cache = join(home, 'seats', 'broker.test', 'acme-corp.json');
    expect(statSync(cache).mode & 0o777).toBe(0o600);
    const seat = JSON.parse(readFileSync(cache, 'utf8')) as Record<string, unknown>;
    expect(seat).toMatchObject({ tenant: acme.tenant.id, principal: asked.principal });
    expect(JSON.stringify(seat)).not.toContain('"d"');
    const mine = await json<RequestList>('morgan', 'requests', '--mine', '--customer', 'acme-corp');
    expect(mine.requests.map((r) => r.id)).toEqual([asked.id]);
    // The customer's admin sees it in their own tenant, from the seat.
    const inAcme = await json<RequestList>('cathy', 'requests');
    expect(inAcme.requests.map((r) => [r.id, r.state])).toEqual([[asked.id, 'pending']]);
    // In the provider's own tenant there is nothing.
    expect((await json<RequestList>('msp-admin', 'requests')).requests).toEqual([]);

    const ended = await json<RelationshipOutcome>('msp-admin', 'relationship', 'end', proposed.id);
    expect(ended).toMatchObject({
      relationship: { state: 'ended' },
      requests_cancelled: 1,
      sessions_ended: 0,
    });
    const after = await json<RequestList>('cathy', 'requests');
    expect(after.requests.map((r) => [r.id, r.state])).toEqual([[asked.id, 'cancelled']]);

    const refused = await tether(
      'morgan',
      'request',
      'server-maintenance',
      '--customer',
      'acme-corp',
      '--reason',
      'again',
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('error not_covered_by_relationship');
    expect(refused.stderr).toContain('hint: `tether customers` lists');
    expect((await json<EligibleCustomerList>('morgan', 'customers')).customers).toEqual([]);
  });

  /** A relationship acme-corp has accepted, ending on 2026-06-30. */
  async function acceptedRelationship(): Promise<RelationshipView> {
    await onboardAcme();
    const proposed = await json<RelationshipView>(
      'msp-admin',
      'relationship',
      'propose',
      'managed-servers',
      '--customer',
      'acme-corp',
      '--groups',
      'operators',
      '--privileges',
      'server-maintenance',
      '--ends',
      '2026-06-30T00:00:00Z',
      '--approvals',
      '1',
    );
    return json<RelationshipView>('cathy', 'relationship', 'accept', proposed.id);
  }

  it('narrows a relationship: more approvals, an earlier end', async () => {
    const accepted = await acceptedRelationship();
    const narrowed = await json<RelationshipOutcome>(
      'cathy',
      'relationship',
      'narrow',
      accepted.id,
      '--approvals',
      '2',
      '--ends',
      '30d',
    );
    expect(narrowed.relationship).toMatchObject({
      approvals: { customer: 2 },
      ends_at: new Date(b.clock.now() + 30 * 24 * 3600_000).toISOString(),
    });
  });

  it("approves on the provider's side with --customer: N of M per side", async () => {
    await onboardAcme();
    const lee = await b.principal('lee');
    writeIdentity(join(home, 'lee.json'), lee.identity);
    const admin = b.client(b.adminIdentity);
    await admin.call('POST', '/v1/groups', { name: 'leads' });
    await admin.call('PUT', '/v1/groups/leads/members/lee');
    const proposed = await json<RelationshipView>(
      'msp-admin',
      'relationship',
      'propose',
      'managed-servers',
      '--customer',
      'acme-corp',
      '--groups',
      'operators',
      '--privileges',
      'server-maintenance',
      '--ends',
      '30d',
      '--approvals',
      '0',
      '--provider-approvals',
      '1',
      '--provider-approvers',
      'leads',
    );
    expect(proposed.approvals).toEqual({ customer: 0, provider: 1, provider_approvers: ['leads'] });
    expect((await tether('cathy', 'relationship', 'show', proposed.id)).stdout).toMatch(
      /0 by the customer's approvers and 1 by the provider's \(leads\) per request/,
    );
    await json('cathy', 'relationship', 'accept', proposed.id);
    const asked = await json<RequestView>(
      'morgan',
      'request',
      'server-maintenance',
      '--customer',
      'acme-corp',
      '--reason',
      'patch the app servers',
    );
    // The privilege asks one approval of acme-corp's own approvers: still pending after lee's.
    const afterLee = await json<RequestView>('lee', 'approve', asked.id, '--customer', 'acme-corp');
    expect(afterLee.state).toBe('pending');
    // lee's seat is lee's own, not morgan's cached one (same TETHER_HOME).
    expect(afterLee.reviews?.map((r) => r.reviewer)).not.toContain(asked.principal);
    const self = await tether('morgan', 'approve', asked.id, '--customer', 'acme-corp');
    expect(self.code).toBe(1);
    expect(self.stderr).toContain('self_approval_forbidden');
  });

  it('lists by state, refuses an empty narrowing, a non-provider and a bad --customer', async () => {
    const accepted = await acceptedRelationship();
    const nothing = await tether('cathy', 'relationship', 'narrow', accepted.id);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain('nothing to change');
    const active = await json<{ relationships: RelationshipView[] }>(
      'msp-admin',
      'relationship',
      'list',
      '--state',
      'active',
    );
    expect(active.relationships.map((r) => r.id)).toEqual([accepted.id]);
    expect((await tether('msp-admin', 'relationship', 'list')).stdout).toMatch(
      /managed-servers\s+msp\s+acme-corp\s+active\s+operators\s+server-maintenance/,
    );
    const none = await json<{ relationships: RelationshipView[] }>(
      'msp-admin',
      'relationship',
      'list',
      '--state',
      'ended',
    );
    expect(none.relationships).toEqual([]);

    // acme-corp is a customer, not a provider: it has no customers of its own.
    const notProvider = await tether('cathy', 'customer', 'list');
    expect(notProvider.code).toBe(1);
    expect(notProvider.stderr).toContain('error not_a_provider');
    expect(notProvider.stderr).toContain('tether init --provider');
    // A customer name that could leave the seats folder is refused before any call.
    const traversal = await tether('morgan', 'request', 'x', '--customer', '../../etc', '--reason', 'r');
    expect(traversal.code).toBe(2);
    expect(existsSync(join(home, 'seats'))).toBe(false);
    // No relationship covers globex: the seat is refused and nothing is cached.
    const uncovered = await tether('morgan', 'requests', '--customer', 'globex');
    expect(uncovered.code).toBe(1);
    expect(uncovered.stderr).toContain('error not_covered_by_relationship');
    expect(existsSync(join(home, 'seats', 'broker.test', 'globex.json'))).toBe(false);
  });
});
