import { DpopError } from '@tether-broker/pep';
import { isTetherError } from '@tether-broker/protocol';
import type { JWTPayload } from 'jose';
import { OAuthError } from '../auth/oauth-error.js';
import {
  jwksCacheOf,
  peekSubjectToken,
  SUBJECT_TOKEN_TYPES,
  verifySubjectToken,
} from '../auth/subject-token.js';
import { assertApprovalStillHolds } from '../core/approval-recheck.js';
import { recordRefusal } from '../core/audit-refusal.js';
import { verifyBrokerProof } from '../core/broker-dpop.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { type DecidedRequest, decideRequest, recordRequest } from '../core/decide-request.js';
import {
  claimTags,
  FEDERATED_PRINCIPAL_KINDS,
  type Federation,
  mapToPrincipal,
  taskReference,
} from '../domain/federation.js';
import { isPastDeadline } from '../domain/request.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import {
  findFederationsFor,
  findOpenFederatedRequest,
  insertFederatedRequest,
  lockFederation,
} from '../store/repositories/federations.js';
import { findPrincipal } from '../store/repositories/principals.js';
import { lockRequest } from '../store/repositories/requests.js';
import { findTenantById } from '../store/repositories/tenants.js';
import { type StartedSession, sessionTokens, startSession } from './activate-session.js';
import {
  recordReuse,
  refuseIfSpent,
  SUBJECT_TOKEN_REUSED,
  spendSubjectToken,
  subjectTokenKey,
} from './subject-token-use.js';

/** RFC 8693 §2.1 grant type. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** RFC 8693 §3: what the exchange issues (and the only `requested_token_type` it serves). */
export const ISSUED_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** The token-endpoint parameters the exchange reads. */
export interface ExchangeForm {
  subject_token?: string | undefined;
  subject_token_type?: string | undefined;
  privilege?: string | undefined;
  duration?: number | undefined;
  requested_token_type?: string | undefined;
  audience?: string | undefined;
  resource?: string | undefined;
}

/** RFC 8693 §2.2.1 answer, plus the session the tokens belong to. */
export interface ExchangeAnswer {
  access_token: string;
  issued_token_type: typeof ISSUED_TOKEN_TYPE;
  token_type: 'DPoP';
  expires_in: number;
  refresh_token: string;
  session_id: string;
}

interface ExchangeAsk {
  subjectToken: string;
  privilege: string;
  durationSeconds: number | undefined;
  target: string | undefined;
}

/** A verified workload: its trust record, claims, the principal they map to, and what policy sees. */
interface Workload {
  trust: Federation;
  /** Names the subject token for its single use (see {@link subjectTokenKey}). */
  tokenKey: string;
  /** Epoch ms after which the subject token is refused as expired anyway. */
  tokenExpiresAt: number;
  /**
   * Epoch ms the session may not outlive: the subject token's `exp` when the trust record
   * binds sessions to it (`ends_with_subject_token`), else undefined.
   */
  sessionNotAfter: number | undefined;
  caller: Caller;
  subject: string;
  run: string | null;
  tags: Record<string, string>;
  audit: Record<string, unknown>;
}

/**
 * `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`: a workload (a CI run, a
 * cluster job) trades its OIDC token for a session of one privilege, bound to the DPoP key
 * that signed the proof. The workload needs no credential of ours: its token, verified against
 * the one trust record its `iss` and `aud` name, is the credential.
 *
 * The pipeline: the form; the DPoP proof; the trust record; strict verification of the token;
 * its claims mapped to a principal; then the ordinary request pipeline (ticket and duration
 * rules, Cedar `request` and `auto_approve`, with the token's `claim:<name>` tags). When policy
 * approves, the session starts at once, its ticket the run's task reference. When it does not,
 * the request waits for reviews and the answer is `invalid_grant` naming it; a later exchange
 * for the same run (trust record, principal, privilege, task reference) picks it up, and starts
 * its session once it is approved, instead of asking again.
 *
 * A subject token is single-use (issue 9 item 6): once it has started a session it is
 * remembered (a digest of issuer and `jti`, or of the token) until its `exp`, in the
 * transaction that starts the session, and any later exchange of it — sequential or
 * concurrent, on any replica — is refused with `invalid_grant` and changes nothing. A token
 * that only left a request pending is not spent: the same token may pick up the approval.
 *
 * A trust record with `ends_with_subject_token` caps the session's hard expiry at the subject
 * token's `exp` (a Kubernetes projected token lives as long as its pod may use it).
 *
 * Errors (RFC 6749 JSON): `invalid_request` for missing or unusable parameters,
 * `invalid_dpop_proof`, `invalid_grant` for a token that is untrusted, fails a check, maps to
 * no usable principal or has an unusable task reference, and for a request awaiting approval;
 * `invalid_scope` for a privilege that does not exist or that policy does not let the
 * principal request.
 *
 * @example
 * ```
 * POST /oauth/token
 * DPoP: <proof, htm POST, htu <broker>/oauth/token>
 * grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=<OIDC JWT>
 *   &subject_token_type=urn:ietf:params:oauth:token-type:jwt&privilege=deploy
 * ```
 */
export async function exchangeToken(
  ctx: BrokerContext,
  form: ExchangeForm,
  dpopHeader: string | string[] | undefined,
): Promise<ExchangeAnswer> {
  const ask = readForm(form);
  const jkt = await proofKey(ctx, dpopHeader);
  const trust = await trustFor(ctx, ask.subjectToken);
  const claims = await verifiedClaims(ctx, trust, ask.subjectToken);
  const workload = {
    ...(await mappedWorkload(ctx, trust, claims)),
    tokenKey: subjectTokenKey(claims, ask.subjectToken),
    // verifySubjectToken requires exp; the clock tolerance is what it still accepts past it.
    tokenExpiresAt: ((claims.exp as number) + ctx.config.clockToleranceSeconds) * 1000,
    sessionNotAfter: trust.endsWithSubjectToken ? (claims.exp as number) * 1000 : undefined,
  };
  const decided = await decide(ctx, workload, ask);
  const outcome = await inTransaction(ctx.store, (tx) => settle(tx, ctx, workload, decided, jkt)).catch(
    async (err: unknown) => {
      // Two exchanges for the same approved request: one session, the other is told so.
      if (isTetherError(err) && (err.code === 'already_activated' || err.code === 'approval_no_longer_valid'))
        throw new OAuthError('invalid_grant', err.detail);
      const refused = activationRefusal(err);
      if (refused) {
        await recordRefusal(ctx, workload.trust.tenantId, {
          actor: workload.caller.principal.id,
          action: 'auth.token_exchange',
          target: workload.trust.id,
          ticket: workload.run,
          principalId: workload.caller.principal.id,
          details: { ...workload.audit, privilege: ask.privilege, reason: refused.message },
        });
        throw refused;
      }
      if (err instanceof OAuthError && err.message === SUBJECT_TOKEN_REUSED) {
        await recordReuse(ctx, {
          tenantId: workload.trust.tenantId,
          federationId: workload.trust.id,
          principalId: workload.caller.principal.id,
          ticket: workload.run,
          audit: workload.audit,
        });
      }
      throw err;
    },
  );
  if ('pending' in outcome) {
    throw new OAuthError(
      'invalid_grant',
      workload.run === null
        ? `request ${outcome.pending} needs approval before a session can start`
        : `request ${outcome.pending} needs approval before a session can start; exchange a token of the same run (${trust.taskClaim} ${workload.run}) again once it is approved`,
    );
  }
  if ('refuse' in outcome) throw outcome.refuse;
  const tokens = await sessionTokens(ctx, outcome.started);
  return {
    access_token: tokens.accessToken,
    issued_token_type: ISSUED_TOKEN_TYPE,
    token_type: 'DPoP',
    expires_in: tokens.expiresIn,
    refresh_token: tokens.refreshToken,
    session_id: tokens.session.id,
  };
}

function readForm(form: ExchangeForm): ExchangeAsk {
  const invalid = (description: string) => new OAuthError('invalid_request', description);
  if (!form.subject_token) throw invalid('subject_token is required');
  if (!(SUBJECT_TOKEN_TYPES as readonly (string | undefined)[]).includes(form.subject_token_type)) {
    throw invalid(`subject_token_type must be one of ${SUBJECT_TOKEN_TYPES.join(', ')}`);
  }
  if (form.requested_token_type !== undefined && form.requested_token_type !== ISSUED_TOKEN_TYPE) {
    throw invalid(`requested_token_type must be ${ISSUED_TOKEN_TYPE}`);
  }
  if (!form.privilege) throw invalid('privilege is required: name the privilege the workload needs');
  if (form.audience !== undefined && form.resource !== undefined && form.audience !== form.resource) {
    throw invalid('audience and resource name different targets; name one');
  }
  return {
    subjectToken: form.subject_token,
    privilege: form.privilege,
    durationSeconds: form.duration,
    target: form.audience ?? form.resource,
  };
}

/** The session key: the exchange is refused without a fresh, single-use proof for the token endpoint. */
async function proofKey(ctx: BrokerContext, header: string | string[] | undefined): Promise<string> {
  try {
    return (await verifyBrokerProof(ctx, header, { method: 'POST', path: '/oauth/token' })).jkt;
  } catch (err) {
    if (err instanceof DpopError) throw new OAuthError(err.code, err.message);
    throw err;
  }
}

const UNTRUSTED = 'untrusted issuer or audience';
/**
 * The one trust record whose issuer is the token's `iss` and whose audience is among its
 * `aud`. The answer is the same whichever part did not match, so a caller cannot probe which
 * issuers a tenant trusts.
 */
async function trustFor(ctx: BrokerContext, token: string): Promise<Federation> {
  const hint = peekSubjectToken(token);
  const candidates = await findFederationsFor(ctx.store, hint.issuer, hint.audiences);
  const [trust] = candidates;
  if (!trust || candidates.length > 1) {
    ctx.logger.info(
      { issuer: hint.issuer.slice(0, 256), candidates: candidates.length },
      'token exchange refused: no single trust record for the token',
    );
    throw new OAuthError('invalid_grant', UNTRUSTED);
  }
  return trust;
}

async function verifiedClaims(ctx: BrokerContext, trust: Federation, token: string): Promise<JWTPayload> {
  try {
    return await verifySubjectToken(jwksCacheOf(ctx), trust, token, {
      now: ctx.clock.now(),
      clockToleranceSeconds: ctx.config.clockToleranceSeconds,
    });
  } catch (err) {
    if (!(err instanceof OAuthError)) throw err;
    ctx.logger.info({ federation: trust.id, err: err.cause }, `subject token refused: ${err.message}`);
    await recordRefusal(ctx, trust.tenantId, {
      actor: trust.id,
      action: 'auth.token_exchange',
      target: trust.id,
      details: { federation: trust.name, issuer: trust.issuer, reason: err.message },
    });
    throw err;
  }
}

/** The principal the verified claims map to, which must exist, be enabled and be of a workload kind. */
async function mappedWorkload(
  ctx: BrokerContext,
  trust: Federation,
  claims: JWTPayload,
): Promise<Omit<Workload, 'tokenKey' | 'tokenExpiresAt' | 'sessionNotAfter'>> {
  const subject = typeof claims.sub === 'string' ? claims.sub.slice(0, 512) : '';
  const run = taskReference(trust.taskClaim, claims);
  const audit = {
    federation: trust.name,
    issuer: trust.issuer,
    subject,
    run: 'reference' in run ? run.reference : null,
  };
  const refuse = async (description: string, principalId: string | null) => {
    await recordRefusal(ctx, trust.tenantId, {
      actor: principalId ?? trust.id,
      action: 'auth.token_exchange',
      target: trust.id,
      principalId,
      details: { ...audit, reason: description },
    });
    return new OAuthError('invalid_grant', description);
  };
  const mapped = mapToPrincipal(trust.principalMapping, claims);
  if (!mapped) throw await refuse(`the subject token's claims map to no principal of this trust`, null);
  const principal = await findPrincipal(ctx.store, trust.tenantId, mapped.principal);
  if (!principal) throw await refuse('the principal this token maps to no longer exists', null);
  if (!(FEDERATED_PRINCIPAL_KINDS as readonly string[]).includes(principal.kind)) {
    throw await refuse(`the principal ${principal.name} is not a workload principal`, principal.id);
  }
  if (!principal.enabled) throw await refuse(`the principal ${principal.name} is disabled`, principal.id);
  if ('invalid' in run) throw await refuse(run.invalid, principal.id);
  const tenant = await findTenantById(ctx.store, trust.tenantId);
  if (!tenant) throw await refuse('the principal this token maps to no longer exists', principal.id);
  return {
    trust,
    caller: { principal, tenant },
    subject,
    run: run.reference,
    tags: claimTags(trust.contextClaims, claims),
    audit: { ...audit, rule: mapped.rule },
  };
}

/**
 * The request pipeline, with the workload's claims as Cedar tags; its refusals in OAuth terms,
 * each in the audit trail (a policy refusal is recorded by the pipeline itself).
 */
async function decide(ctx: BrokerContext, workload: Workload, ask: ExchangeAsk): Promise<DecidedRequest> {
  const refuse = async (error: OAuthError) => {
    await recordRefusal(ctx, workload.trust.tenantId, {
      actor: workload.caller.principal.id,
      action: 'auth.token_exchange',
      target: workload.trust.id,
      ticket: workload.run,
      principalId: workload.caller.principal.id,
      details: { ...workload.audit, privilege: ask.privilege, reason: error.message },
    });
    return error;
  };
  let decided: DecidedRequest;
  try {
    decided = await decideRequest(
      ctx,
      workload.caller,
      {
        privilege: ask.privilege,
        ticket: workload.run ?? undefined,
        justification: `federated workload ${workload.subject || '(no sub)'} via trust ${workload.trust.name}`,
        durationSeconds: ask.durationSeconds,
      },
      { principalTags: workload.tags, auditDetails: workload.audit },
    );
  } catch (err) {
    if (!isTetherError(err)) throw err;
    switch (err.code) {
      case 'not_eligible':
        throw new OAuthError('invalid_scope', err.detail);
      case 'not_found':
        throw await refuse(new OAuthError('invalid_scope', err.detail));
      case 'duration_exceeds_max':
        throw await refuse(new OAuthError('invalid_request', err.detail));
      case 'ticket_required':
      case 'ticket_pattern_mismatch':
        throw await refuse(
          new OAuthError(
            'invalid_grant',
            `the run's task reference (${workload.trust.taskClaim}) does not satisfy the privilege: ${err.detail}`,
          ),
        );
      default:
        throw err;
    }
  }
  if (ask.target !== undefined && !decided.privilege.audiences.includes(ask.target)) {
    throw await refuse(
      new OAuthError(
        'invalid_request',
        `${JSON.stringify(ask.target)} is not an audience of ${decided.privilege.name}`,
      ),
    );
  }
  return decided;
}

/**
 * Activation's refusal in OAuth terms: policy's `continue` leaving the session nothing to hold
 * (say, no resource of the privilege in the token's namespace) is a scope the workload may not have.
 */
function activationRefusal(err: unknown): OAuthError | undefined {
  return isTetherError(err) && err.code === 'not_eligible'
    ? new OAuthError('invalid_scope', err.detail)
    : undefined;
}

type Settled = { started: StartedSession } | { pending: string } | { refuse: OAuthError };

/**
 * Inside one transaction, with the trust record locked (so a concurrent delete either sees
 * the session or stops it from starting): start the session of an auto-approved request, or
 * of this run's request once a reviewer approved it; else leave (or keep) a request pending.
 */
async function settle(
  tx: TxHandle,
  ctx: BrokerContext,
  workload: Workload,
  decided: DecidedRequest,
  jkt: string,
): Promise<Settled> {
  if (!(await lockFederation(tx, workload.trust.id)))
    return { refuse: new OAuthError('invalid_grant', UNTRUSTED) };
  // A token that already started a session starts nothing else, not even a pending request.
  await refuseIfSpent(tx, workload.tokenKey);
  // Accepted within the clock tolerance, a token past its exp cannot bound a session to it.
  if (workload.sessionNotAfter !== undefined && workload.sessionNotAfter <= ctx.clock.now())
    return { refuse: new OAuthError('invalid_grant', 'the subject token has expired') };
  // Recorded in this transaction, before the session starts: of concurrent exchanges of one
  // token, the key lets one through; the others roll back, leaving no row behind.
  const spend = (requestId: string) =>
    spendSubjectToken(tx, {
      tokenKey: workload.tokenKey,
      tenantId: workload.trust.tenantId,
      federationId: workload.trust.id,
      requestId,
      usedAt: ctx.clock.now(),
      expiresAt: workload.tokenExpiresAt,
    });
  const principalId = workload.caller.principal.id;
  const start = {
    jkt,
    actor: principalId,
    details: { federation: workload.trust.name, subject: workload.subject },
    notAfter: workload.sessionNotAfter,
  };
  const link = async (requestId: string) =>
    insertFederatedRequest(tx, {
      requestId,
      tenantId: workload.trust.tenantId,
      federationId: workload.trust.id,
      subject: workload.subject,
      principalTags: workload.tags,
      createdAt: decided.request.createdAt,
    });

  if (decided.autoApproved) {
    await spend(decided.request.id);
    await recordRequest(tx, decided);
    await link(decided.request.id);
    return { started: await startSession(tx, ctx, { ...start, request: decided.request }) };
  }
  const openId = workload.run
    ? await findOpenFederatedRequest(tx, {
        federationId: workload.trust.id,
        principalId,
        privilegeId: decided.privilege.id,
        ticket: workload.run,
      })
    : undefined;
  const open = openId ? await lockRequest(tx, workload.trust.tenantId, openId) : undefined;
  const now = ctx.clock.now();
  if (open?.state === 'approved' && open.activationExpiresAt !== null && now < open.activationExpiresAt) {
    // As at any activation: the approvals must still satisfy the rule as it stands now.
    await assertApprovalStillHolds(
      ctx,
      tx,
      open,
      workload.caller.principal,
      workload.caller.tenant.timeZone,
      workload.tags,
    );
    await spend(open.id);
    return { started: await startSession(tx, ctx, { ...start, request: open }) };
  }
  if (open?.state === 'pending' && !isPastDeadline(open, now)) return { pending: open.id };
  await recordRequest(tx, decided);
  await link(decided.request.id);
  return { pending: decided.request.id };
}
