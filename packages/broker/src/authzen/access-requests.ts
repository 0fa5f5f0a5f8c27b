import { createHash } from 'node:crypto';
import { TetherError } from '@tether-broker/protocol';
import type { AccessRequestSubmission, AccessRequestTask } from '@tether-broker/protocol/api';
import { seesAllSessions } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { decideRequest, recordRequest } from '../core/decide-request.js';
import { type AccessRequest, expire } from '../domain/request.js';
import { inTransaction, isUniqueViolation } from '../store/database.js';
import {
  findTaskByIdempotencyKey,
  findTaskByJti,
  insertTask,
  isTaskRequest,
} from '../store/repositories/access-request-tasks.js';
import { findPrivilegeByName } from '../store/repositories/privileges.js';
import { findRequest } from '../store/repositories/requests.js';
import { findSessionByRequest } from '../store/repositories/sessions.js';
import {
  accessRequestsPath,
  BindingRefused,
  bindingHash,
  canonicalize,
  verifyBindingToken,
} from './requestable.js';
import { resolveSubject } from './subjects.js';

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The task of a Tether request, as the Access Request profile reports it (§10.2, §11, §12): an
 * approval not activated within its window has expired.
 */
export async function taskOf(ctx: BrokerContext, request: AccessRequest): Promise<AccessRequestTask> {
  const now = ctx.clock.now();
  const seen = expire(request, now) ?? request;
  const statusEndpoint = `${ctx.config.publicUrl}${accessRequestsPath}/${seen.id}`;
  const lapsed =
    seen.state === 'approved' &&
    seen.activationExpiresAt !== null &&
    now >= seen.activationExpiresAt &&
    !(await findSessionByRequest(ctx.store, seen.id));
  const task: AccessRequestTask['task'] = {
    id: seen.id,
    status: lapsed ? 'expired' : seen.state,
    status_endpoint: statusEndpoint,
    expires_at: iso(
      seen.state === 'approved' && seen.activationExpiresAt ? seen.activationExpiresAt : seen.expiresAt,
    ),
  };
  if (task.status !== 'approved' || seen.activationExpiresAt === null) return { task };
  // §12: re-evaluate, citing the approval; the PDP permits once the request is a live session.
  return {
    task,
    result: {
      mode: 'reevaluate',
      approval: {
        id: seen.id,
        approved_at: iso(seen.resolvedAt ?? seen.createdAt),
        approved_until: iso(seen.activationExpiresAt),
      },
    },
  };
}

/** Whether the caller is the denied subject: access is requested by whoever was denied it. */
async function assertSubjectIsCaller(
  ctx: BrokerContext,
  caller: Caller,
  subject: AccessRequestSubmission['subject'],
) {
  const resolved = await resolveSubject(ctx, caller.tenant.id, subject);
  if (resolved?.principal?.id !== caller.principal.id)
    throw new TetherError(
      'forbidden',
      'an access request is submitted by the subject that was denied, for itself',
    );
}

/** The submission, canonical, hashed: what an idempotent retry must repeat exactly. */
function bodyHash(submission: AccessRequestSubmission): string {
  return createHash('sha256')
    .update(canonicalize(submission) ?? '', 'utf8')
    .digest('hex');
}

/**
 * §10.1: the same submission sent again under its Idempotency-Key (an answer lost) gets its
 * task, even after the denial has expired; the key with another submission is refused.
 */
async function earlierTask(
  ctx: BrokerContext,
  caller: Caller,
  idempotencyKey: string | undefined,
  hash: string,
): Promise<AccessRequestTask | undefined> {
  if (idempotencyKey === undefined) return undefined;
  const earlier = await findTaskByIdempotencyKey(ctx.store, caller.principal.id, idempotencyKey);
  if (!earlier) return undefined;
  if (earlier.body_hash !== hash)
    throw new TetherError('duplicate_request', 'this Idempotency-Key was used for a different submission');
  const request = await findRequest(ctx.store, caller.tenant.id, earlier.request_id);
  return request && (await taskOf(ctx, request));
}

/**
 * An access request for what a requestable denial named (Access Request profile §10). The
 * binding token must be one this broker signed for this tenant, unexpired, over exactly the
 * subject, resource and action submitted; the caller must be the subject; each denial is
 * submitted once. The Tether request it creates goes through the same rules as any other
 * (ticket, duration, Cedar `request` and `auto_approve`, approvals): the task is that request.
 */
export async function submitAccessRequest(
  ctx: BrokerContext,
  caller: Caller,
  submission: AccessRequestSubmission,
  idempotencyKey: string | undefined,
): Promise<{ created: boolean; task: AccessRequestTask }> {
  const hash = bodyHash(submission);
  const again = await earlierTask(ctx, caller, idempotencyKey, hash);
  if (again) return { created: false, task: again };
  let denial: Awaited<ReturnType<typeof verifyBindingToken>>;
  try {
    denial = await verifyBindingToken(ctx, submission.denial.binding_token);
  } catch (err) {
    if (!(err instanceof BindingRefused)) throw err;
    if (err.expired) throw new TetherError('expired_denial', err.message);
    throw new TetherError('invalid_denial_binding', err.message);
  }
  if (denial.tenant !== caller.tenant.id)
    throw new TetherError('invalid_denial_binding', 'the denial was not made in this tenant');
  if (bindingHash(submission) !== denial.bindingHash)
    throw new TetherError('invalid_denial_binding', 'the subject, resource or action differ from the denial');
  if (Date.parse(submission.denial.expires_at) !== denial.expiresAt)
    throw new TetherError('invalid_denial_binding', 'denial.expires_at is not the one the denial stated');
  if (
    submission.denial.evaluation_id !== undefined &&
    submission.denial.evaluation_id !== denial.evaluationId
  )
    throw new TetherError('invalid_denial_binding', 'denial.evaluation_id is not the denial the token binds');
  if (submission.denial.template !== undefined && submission.denial.template !== denial.template)
    throw new TetherError('invalid_denial_binding', 'denial.template is not the one the denial named');
  await assertSubjectIsCaller(ctx, caller, submission.subject);

  if (await findTaskByJti(ctx.store, denial.jti))
    throw new TetherError(
      'duplicate_request',
      'this denial was already submitted (send the same Idempotency-Key to retry a submission)',
    );

  const now = ctx.clock.now();
  const until = submission.requested_access?.requested_until;
  if (until !== undefined && Date.parse(until) <= now)
    throw new TetherError('invalid_request', 'requested_access.requested_until lies in the past');
  const decided = await decideRequest(ctx, caller, {
    privilege: denial.template,
    ticket: submission.context?.ticket,
    justification:
      submission.context?.business_justification ??
      `requested after a denial of ${submission.action.name} on ${submission.resource.id}`,
    ...(until === undefined
      ? {}
      : { durationSeconds: Math.max(60, Math.ceil((Date.parse(until) - now) / 1000)) }),
  });
  try {
    await inTransaction(ctx.store, async (tx) => {
      await recordRequest(tx, decided);
      await insertTask(tx, {
        jti: denial.jti,
        tenant_id: caller.tenant.id,
        principal_id: caller.principal.id,
        request_id: decided.request.id,
        idempotency_key: idempotencyKey ?? null,
        body_hash: hash,
        created_at: now,
      });
    });
  } catch (err) {
    // Two submissions of one denial at once: one wins, the other is a replay.
    if (isUniqueViolation(err))
      throw new TetherError('duplicate_request', 'this denial was already submitted');
    throw err;
  }
  return { created: true, task: await taskOf(ctx, decided.request) };
}

/** Longest a status read may wait for a change (`wait`). */
export const TASK_WAIT_MAX_SECONDS = 25;
const TASK_WAIT_STEP_MS = 250;

/**
 * A task's status (§11), for the requester who submitted it (and admins, auditors). With
 * `wait`, the answer is held until the status is no longer `unless` (default: as it is now), the
 * wait is over, or the caller goes away: a waiting client learns of the decision as it is made,
 * with one request instead of a polling loop.
 */
export async function accessRequestTask(
  ctx: BrokerContext,
  caller: Caller,
  id: string,
  wait?: { seconds: number; unless?: string | undefined; gone: () => boolean },
): Promise<AccessRequestTask> {
  const read = async () => {
    const request = await findRequest(ctx.store, caller.tenant.id, id);
    const mayRead =
      request !== undefined && (request.principalId === caller.principal.id || seesAllSessions(caller));
    if (!mayRead || !(await isTaskRequest(ctx.store, request.id)))
      throw new TetherError('unknown_task', `no task ${JSON.stringify(id)}`);
    return taskOf(ctx, request);
  };
  let task = await read();
  if (!wait) return task;
  const unless = wait.unless ?? task.task.status;
  const until = performance.now() + Math.min(wait.seconds, TASK_WAIT_MAX_SECONDS) * 1000;
  while (task.task.status === unless && performance.now() < until && !wait.gone()) {
    await new Promise((resolve) => setTimeout(resolve, TASK_WAIT_STEP_MS));
    task = await read();
  }
  return task;
}

/**
 * What a request for `template` (a privilege) needs beyond the denied question, as a JSON Schema
 * of the submission's `context` and `requested_access` (§7 `request_schema_url`).
 */
export async function requestSchema(
  ctx: BrokerContext,
  caller: Caller,
  template: string,
): Promise<Record<string, unknown>> {
  const privilege = await findPrivilegeByName(ctx.store, caller.tenant.id, template);
  if (!privilege)
    throw new TetherError('not_found', `no privilege ${JSON.stringify(template)} in this tenant`);
  const ticket = privilege.ticket;
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: `A request for ${privilege.name}`,
    type: 'object',
    properties: {
      context: {
        type: 'object',
        properties: {
          ticket: {
            type: 'string',
            description: 'the change or incident ticket the task belongs to',
            ...(ticket.pattern ? { pattern: `^(?:${ticket.pattern})$` } : {}),
          },
          business_justification: { type: 'string', maxLength: 2048, description: 'why, what the task is' },
        },
        required: [...(ticket.required ? ['ticket'] : []), 'business_justification'],
      },
      requested_access: {
        type: 'object',
        properties: {
          requested_until: {
            type: 'string',
            format: 'date-time',
            description: `when the session should end at the latest (at most ${privilege.maxDurationSeconds} s after activation)`,
          },
        },
      },
    },
    required: ['context'],
  };
}
