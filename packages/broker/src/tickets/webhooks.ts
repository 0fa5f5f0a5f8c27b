import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { sealSecret } from '../config/key-encryption.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { isIdOf, newId } from '../domain/ids.js';
import { MANUAL_SOURCE, type Webhook, type WebhookKind } from '../domain/ticket.js';
import { inTransaction, isUniqueViolation, type StoreHandle } from '../store/database.js';
import {
  deleteWebhook,
  findWebhook,
  findWebhookByName,
  insertWebhook,
  listWebhooks,
} from '../store/repositories/webhooks.js';
import { newWebhookSecret } from './webhook-signature.js';

export interface WebhookInput {
  kind: WebhookKind;
  name: string;
  /** Defaults to the kind's name: principals carry e.g. `github=octocat`. */
  assigneeAttribute?: string | undefined;
}

/** A webhook just created, with the one and only copy of its secret the broker will ever give. */
export interface CreatedWebhook {
  webhook: Webhook;
  secret: string;
  url: string;
}

/** Where a ticket system delivers: the kind and the webhook id name the tenant and the secret. */
export function deliveryUrl(
  ctx: Pick<BrokerContext, 'config'>,
  webhook: Pick<Webhook, 'kind' | 'id'>,
): string {
  return `${ctx.config.publicUrl}/v1/webhooks/${webhook.kind}/${webhook.id}`;
}

/**
 * An admin registers a ticket system as a source of the tenant's ticket register. The secret
 * is generated here, sealed under the KEK before it is stored, and answered once.
 */
export async function createWebhook(
  ctx: BrokerContext,
  caller: Caller,
  input: WebhookInput,
): Promise<CreatedWebhook> {
  requireRole(caller, 'admin');
  if (input.name === MANUAL_SOURCE) {
    throw new TetherError(
      'invalid_request',
      `"${MANUAL_SOURCE}" names tickets closed by hand; choose another name`,
    );
  }
  const secret = newWebhookSecret();
  const sealed = await sealSecret(ctx.kek, secret);
  const now = ctx.clock.now();
  const webhook: Webhook = {
    id: newId('webhook'),
    tenantId: caller.tenant.id,
    name: input.name,
    kind: input.kind,
    assigneeAttribute: input.assigneeAttribute ?? input.kind,
    createdBy: caller.principal.id,
    createdAt: now,
  };
  await inTransaction(ctx.store, async (tx) => {
    try {
      await insertWebhook(tx, webhook, sealed);
    } catch (err) {
      if (isUniqueViolation(err))
        throw new TetherError('already_exists', `a webhook named ${input.name} already exists`);
      throw err;
    }
    await recordAudit(tx, webhook.tenantId, now, {
      actor: caller.principal.id,
      action: 'webhook.created',
      target: webhook.id,
      outcome: 'success',
      details: { name: webhook.name, kind: webhook.kind, assignee_attribute: webhook.assigneeAttribute },
    });
  });
  return { webhook, secret, url: deliveryUrl(ctx, webhook) };
}

async function resolveWebhook(h: StoreHandle, tenantId: string, ref: string): Promise<Webhook> {
  const found = isIdOf('webhook', ref)
    ? await findWebhook(h, tenantId, ref)
    : await findWebhookByName(h, tenantId, ref);
  if (!found) throw new TetherError('not_found', `no webhook ${JSON.stringify(ref)} in this tenant`);
  return found;
}

export async function findWebhooks(ctx: BrokerContext, caller: Caller): Promise<Webhook[]> {
  requireRole(caller, 'admin', 'auditor');
  return listWebhooks(ctx.store, caller.tenant.id);
}

export async function getWebhook(ctx: BrokerContext, caller: Caller, ref: string): Promise<Webhook> {
  requireRole(caller, 'admin', 'auditor');
  return resolveWebhook(ctx.store, caller.tenant.id, ref);
}

/**
 * An admin removes a ticket source: its deliveries are refused from now on. The tickets it
 * reported stay in the register as they are (a closed ticket stays closed).
 */
export async function removeWebhook(ctx: BrokerContext, caller: Caller, ref: string): Promise<void> {
  requireRole(caller, 'admin');
  await inTransaction(ctx.store, async (tx) => {
    const webhook = await resolveWebhook(tx, caller.tenant.id, ref);
    if (!(await deleteWebhook(tx, caller.tenant.id, webhook.id)))
      throw new TetherError('not_found', `no webhook ${JSON.stringify(ref)} in this tenant`);
    await recordAudit(tx, webhook.tenantId, ctx.clock.now(), {
      actor: caller.principal.id,
      action: 'webhook.deleted',
      target: webhook.id,
      outcome: 'success',
      details: { name: webhook.name, kind: webhook.kind },
    });
  });
}
