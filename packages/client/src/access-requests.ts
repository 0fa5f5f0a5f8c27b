import type { AccessRequestTask, AuthzenDecision } from '@tether-broker/protocol/api';
import type { BrokerClient } from './broker-client.js';
import { BoundSession } from './session.js';
import type { SessionKey } from './session-key.js';

/** The question an AuthZEN PDP was asked (subject, resource, action), as the denial binds it. */
export interface DeniedQuestion {
  subject: { type: string; id: string; properties?: Record<string, unknown> };
  resource: { type: string; id: string; properties?: Record<string, unknown> };
  action: { name: string; properties?: Record<string, unknown> };
}

/** What the agent asks with: its ticket and why (and, optionally, until when). */
export interface AccessAsk {
  ticket?: string;
  justification: string;
  requestedUntil?: Date;
}

/** The request was not approved (denied, expired, cancelled), or the wait ran out. */
export class AccessNotGranted extends Error {
  override readonly name = 'AccessNotGranted';
  constructor(
    readonly status: string,
    readonly taskId: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

interface AccessRequestContext {
  endpoint?: string;
  expires_at: string;
  binding_token?: string;
  template?: string;
}

/** The requestable part of a denial (Access Request profile §7), or undefined for a plain denial. */
export function requestableDenial(decision: AuthzenDecision): AccessRequestContext | undefined {
  if (decision.decision) return undefined;
  const ar = decision.context?.access_request as AccessRequestContext | undefined;
  return ar && typeof ar.expires_at === 'string' && typeof ar.binding_token === 'string' ? ar : undefined;
}

/** A path on the client's own broker: a denial may not send the agent's credentials elsewhere. */
function brokerPath(client: BrokerClient, url: string): string {
  const target = new URL(url);
  if (target.origin !== new URL(client.baseUrl).origin)
    throw new AccessNotGranted(
      'failed',
      undefined,
      `the denial names another server (${target.origin}) than this broker`,
    );
  return `${target.pathname}${target.search}`;
}

const TERMINAL = new Set(['approved', 'denied', 'expired', 'cancelled', 'failed']);

/**
 * On a requestable denial: submits the access request the denial names (with an
 * `Idempotency-Key`, so a retry after a lost answer gets the same task), waits for the decision
 * (each status read is held by the broker until the status changes: no polling loop), and once
 * approved activates the session, bound to `key` (a fresh non-extractable one by default). Throws
 * {@link AccessNotGranted} when it is denied, expires or `waitMs` passes.
 *
 * @example
 * ```ts
 * const session = await requestAccessAfterDenial(client, question, decision, {
 *   ticket: 'CHG-42', justification: 'rotate the release key',
 * });
 * ```
 */
export async function requestAccessAfterDenial(
  client: BrokerClient,
  question: DeniedQuestion,
  decision: AuthzenDecision,
  ask: AccessAsk,
  options: { key?: SessionKey; waitMs?: number; signal?: AbortSignal } = {},
): Promise<BoundSession> {
  const denial = requestableDenial(decision);
  if (!denial) throw new AccessNotGranted('not_requestable', undefined, 'the denial is not requestable');
  const endpoint = denial.endpoint ?? `${client.baseUrl}/access/v1/requests`;
  const submitted = await client.call<AccessRequestTask>(
    'POST',
    brokerPath(client, endpoint),
    {
      ...question,
      context: {
        ...(ask.ticket === undefined ? {} : { ticket: ask.ticket }),
        business_justification: ask.justification,
      },
      ...(ask.requestedUntil
        ? { requested_access: { requested_until: ask.requestedUntil.toISOString() } }
        : {}),
      denial: {
        binding_token: denial.binding_token,
        expires_at: denial.expires_at,
        ...(typeof decision.context?.evaluation_id === 'string'
          ? { evaluation_id: decision.context.evaluation_id }
          : {}),
      },
    },
    { headers: { 'idempotency-key': globalThis.crypto.randomUUID() } },
  );
  const deadline = client.now() + (options.waitMs ?? 3_600_000);
  let task = submitted;
  const status = brokerPath(client, task.task.status_endpoint);
  while (!TERMINAL.has(task.task.status)) {
    if (options.signal?.aborted || client.now() >= deadline)
      throw new AccessNotGranted(
        task.task.status,
        task.task.id,
        `request ${task.task.id} is still ${task.task.status}`,
      );
    task = await client.call<AccessRequestTask>('GET', `${status}?wait=25&unless=${task.task.status}`);
  }
  if (task.task.status !== 'approved')
    throw new AccessNotGranted(
      task.task.status,
      task.task.id,
      `request ${task.task.id} was ${task.task.status}`,
    );
  return BoundSession.activate(client, task.task.id, options.key);
}

/**
 * What an agent framework calls around a protected call: tries it; when the answer is a
 * requestable denial, asks for the access, waits for a human's approval, and tries again with
 * the session it got. `attempt` answers `{ value }` or `{ denied, question }` (the PDP's decision
 * as the service relayed it); it is given the session on the retry.
 */
export async function withRequestedAccess<T>(
  client: BrokerClient,
  attempt: (
    session: BoundSession | undefined,
  ) => Promise<{ value: T } | { denied: AuthzenDecision; question: DeniedQuestion }>,
  ask: AccessAsk,
  options: { key?: SessionKey; waitMs?: number; signal?: AbortSignal } = {},
): Promise<{ value: T; session: BoundSession | undefined }> {
  const first = await attempt(undefined);
  if ('value' in first) return { value: first.value, session: undefined };
  const session = await requestAccessAfterDenial(client, first.question, first.denied, ask, options);
  const again = await attempt(session);
  if ('value' in again) return { value: again.value, session };
  throw new AccessNotGranted('failed', undefined, 'the call was denied again after the access was granted');
}
