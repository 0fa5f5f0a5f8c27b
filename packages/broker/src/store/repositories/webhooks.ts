import type { Webhook, WebhookKind } from '../../domain/ticket.js';
import type { StoreHandle, TxHandle } from '../database.js';
import type { WebhookRow } from '../schema.js';

function toWebhook(row: WebhookRow): Webhook {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    kind: row.kind as WebhookKind,
    assigneeAttribute: row.assignee_attribute,
    createdBy: row.created_by,
    createdAt: row.created_at,
  };
}

/** Stores a webhook with its secret, sealed by the caller: the plaintext never reaches the store. */
export async function insertWebhook(tx: TxHandle, w: Webhook, sealedSecret: string): Promise<void> {
  await tx.db
    .insertInto('webhooks')
    .values({
      id: w.id,
      tenant_id: w.tenantId,
      name: w.name,
      kind: w.kind,
      secret_enc: sealedSecret,
      assignee_attribute: w.assigneeAttribute,
      created_by: w.createdBy,
      created_at: w.createdAt,
    })
    .execute();
}

/** A webhook and its sealed secret, by id alone: a delivery names no tenant but its webhook's. */
export async function findWebhookForDelivery(
  h: StoreHandle,
  id: string,
): Promise<{ webhook: Webhook; sealedSecret: string } | undefined> {
  const row = await h.db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
  return row && { webhook: toWebhook(row), sealedSecret: row.secret_enc };
}

export async function findWebhook(
  h: StoreHandle,
  tenantId: string,
  id: string,
): Promise<Webhook | undefined> {
  const row = await h.db
    .selectFrom('webhooks')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row && toWebhook(row);
}

export async function findWebhookByName(
  h: StoreHandle,
  tenantId: string,
  name: string,
): Promise<Webhook | undefined> {
  const row = await h.db
    .selectFrom('webhooks')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('name', '=', name)
    .executeTakeFirst();
  return row && toWebhook(row);
}

export async function listWebhooks(h: StoreHandle, tenantId: string): Promise<Webhook[]> {
  const rows = await h.db
    .selectFrom('webhooks')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('name')
    .execute();
  return rows.map(toWebhook);
}

/** Removes a webhook and the delivery ids it has seen. */
export async function deleteWebhook(tx: TxHandle, tenantId: string, id: string): Promise<boolean> {
  await tx.db.deleteFrom('webhook_deliveries').where('webhook_id', '=', id).execute();
  const result = await tx.db
    .deleteFrom('webhooks')
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return Number(result.numDeletedRows) === 1;
}

/**
 * Records a delivery id as seen. Answers false when it already was: the delivery is a
 * replay. A concurrent delivery with the same id waits for this transaction, then sees it.
 */
export async function recordDelivery(
  tx: TxHandle,
  d: { webhookId: string; deliveryId: string; tenantId: string; outcome: string; at: number },
): Promise<boolean> {
  const result = await tx.db
    .insertInto('webhook_deliveries')
    .values({
      webhook_id: d.webhookId,
      delivery_id: d.deliveryId,
      tenant_id: d.tenantId,
      outcome: d.outcome,
      received_at: d.at,
    })
    .onConflict((oc) => oc.columns(['webhook_id', 'delivery_id']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
}

/** The outcome of a delivery, once it is known (the row is written first, to claim the id). */
export async function setDeliveryOutcome(
  tx: TxHandle,
  webhookId: string,
  deliveryId: string,
  outcome: string,
): Promise<void> {
  await tx.db
    .updateTable('webhook_deliveries')
    .set({ outcome })
    .where('webhook_id', '=', webhookId)
    .where('delivery_id', '=', deliveryId)
    .execute();
}
