import { readFileSync } from 'node:fs';
import type { FederationList, FederationView } from '@tether-broker/protocol/api';
import { type Command, InvalidArgumentError } from 'commander';
import { seg } from '../api.js';
import { collectList } from '../attributes.js';
import { formatDuration, parseDuration } from '../duration.js';
import { CliError, EXIT } from '../errors.js';
import { lookUpNames, type Names } from '../names.js';
import { list, printJson, renderFields, renderTable, say, shortTime } from '../output.js';
import { Session } from '../session.js';

interface TrustFlags {
  issuer: string;
  audience: string;
  jwksUri?: string;
  jwksFile?: string;
  alg?: string[];
  map: MappingRule[];
  claim?: string[];
  taskClaim?: string;
  maxTokenAge?: number;
  endsWithSubjectToken?: boolean;
}

/** One `principal_mapping` rule as the API takes it: every condition must hold; `principal` is a name or id. */
export interface MappingRule {
  match: Record<string, string>;
  principal: string;
}

// As the broker accepts them: claim paths of up to 4 identifiers separated by `/`
// (`kubernetes.io/namespace`), lower-case names (or ids) for principals. The broker says why a
// path it refuses breaks its rules (prototype keys, length).
const CLAIM_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}(\/[A-Za-z_][A-Za-z0-9_.-]{0,63}){0,3}$/;
const PRINCIPAL_REF = /^[a-z0-9][a-z0-9._@-]*$/;
/** A `,` starts a new condition only where `claim=` follows, so values may hold commas. */
const CONDITION_SEPARATOR = /,(?=[A-Za-z_][A-Za-z0-9_./-]*=)/;
/** JWK members that only a private or secret key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'];

/**
 * Parses one `--map 'claim=value,claim2=value2:principal'`: the conditions (all must hold;
 * a value may be a glob where `*` matches any run of characters), then, after the last `:`,
 * the principal they map to. Values may contain `:` and `,` (a `,` separates conditions only
 * when `claim=` follows it).
 *
 * @example
 * ```ts
 * parseMapping('repository=acme/web,ref=refs/heads/main:deploy-pipeline');
 * // { match: { repository: 'acme/web', ref: 'refs/heads/main' }, principal: 'deploy-pipeline' }
 * ```
 */
export function parseMapping(text: string): MappingRule {
  const colon = text.lastIndexOf(':');
  const principal = colon < 0 ? '' : text.slice(colon + 1).trim();
  if (colon < 0 || !PRINCIPAL_REF.test(principal)) {
    throw new InvalidArgumentError(
      `${JSON.stringify(text)} must end with :<principal>, e.g. 'repository=acme/web,ref=refs/heads/main:deploy-pipeline'`,
    );
  }
  const match: Record<string, string> = {};
  for (const condition of text.slice(0, colon).split(CONDITION_SEPARATOR)) {
    const at = condition.indexOf('=');
    const claim = at < 0 ? '' : condition.slice(0, at).trim();
    const value = at < 0 ? '' : condition.slice(at + 1);
    if (!CLAIM_NAME.test(claim)) {
      throw new InvalidArgumentError(`${JSON.stringify(condition)} in --map is not claim=value`);
    }
    if (value === '') throw new InvalidArgumentError(`the condition on ${claim} in --map has no value`);
    if (Object.hasOwn(match, claim)) {
      throw new InvalidArgumentError(`--map names ${claim} twice; one value (or glob) per claim`);
    }
    match[claim] = value;
  }
  return { match, principal };
}

/** A commander parser collecting repeated `--map` into the ordered rule list. */
export function collectMapping(text: string, previous: MappingRule[] | undefined): MappingRule[] {
  return [...(previous ?? []), parseMapping(text)];
}

function parseClaimName(text: string): string {
  if (!CLAIM_NAME.test(text)) throw new InvalidArgumentError(`${JSON.stringify(text)} is not a claim name`);
  return text;
}

/**
 * The issuer's public keys from a file: a JWKS (`{"keys": [...]}`) or one JWK. Private or
 * secret key material is refused here, before anything is sent.
 */
export function readJwksFile(path: string): { keys: Record<string, unknown>[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'not valid JSON';
    throw new CliError('invalid_key_file', `cannot read a JWKS from ${path} (${reason})`, EXIT.usage);
  }
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(parsed)) throw new CliError('invalid_key_file', `${path} holds no JWKS or JWK`, EXIT.usage);
  const keys = Array.isArray(parsed.keys) ? parsed.keys : 'kty' in parsed ? [parsed] : undefined;
  if (!keys || keys.length === 0 || !keys.every(isObject)) {
    throw new CliError('invalid_key_file', `${path} holds no JWKS ({"keys": [...]}) or JWK`, EXIT.usage);
  }
  if (keys.some((k) => PRIVATE_MEMBERS.some((m) => m in k))) {
    throw new CliError(
      'invalid_key_file',
      `${path} holds private or secret key material; nothing was sent`,
      EXIT.usage,
      "give the issuer's public keys only",
    );
  }
  return { keys };
}

/** Flags → the API's body (POST /v1/federations). */
export function federationBody(name: string, flags: TrustFlags): Record<string, unknown> {
  if ((flags.jwksUri === undefined) === (flags.jwksFile === undefined)) {
    throw new CliError(
      'invalid_argument',
      "give the issuer's keys: --jwks-uri or --jwks-file (one)",
      EXIT.usage,
    );
  }
  return {
    name,
    issuer: flags.issuer,
    audience: flags.audience,
    ...(flags.jwksUri === undefined ? {} : { jwks_uri: flags.jwksUri }),
    ...(flags.jwksFile === undefined ? {} : { jwks: readJwksFile(flags.jwksFile) }),
    ...(flags.alg ? { algorithms: flags.alg } : {}),
    principal_mapping: flags.map,
    ...(flags.claim ? { context_claims: flags.claim } : {}),
    ...(flags.taskClaim === undefined ? {} : { task_claim: flags.taskClaim }),
    ...(flags.maxTokenAge === undefined ? {} : { max_token_age: flags.maxTokenAge }),
    ...(flags.endsWithSubjectToken ? { ends_with_subject_token: true } : {}),
  };
}

function rule(r: FederationView['principal_mapping'][number], names: Names): string {
  const conditions = Object.entries(r.match).map(([claim, value]) => `${claim}=${value}`);
  return `${conditions.join(', ')} -> ${names.of(r.principal)}`;
}

function keysText(f: FederationView): string {
  return f.jwks_uri ?? `inline, ${f.jwks?.keys.length ?? 0} key(s)`;
}

function federationDetails(f: FederationView, names: Names): string {
  const fields = renderFields([
    ['trust', `${f.name} (${f.id})`],
    ['issuer', f.issuer],
    ['audience', f.audience],
    ['keys', keysText(f)],
    ['algorithms', list(f.algorithms)],
    ['task claim', f.task_claim],
    ['context claims', list(f.context_claims)],
    ['max token age', formatDuration(f.max_token_age)],
    ['session ends', f.ends_with_subject_token ? 'with the subject token (its exp)' : 'at its own expiry'],
    ['created', shortTime(f.created_at)],
  ]);
  const rules = f.principal_mapping.map((r, i) => `  ${i + 1}. ${rule(r, names)}`);
  return `${fields}\nrules (first match wins):\n${rules.join('\n')}`;
}

/** `tether trust …`: which workload identity issuers may exchange their tokens for sessions (/v1/federations). */
export function registerTrust(program: Command): void {
  const trust = program
    .command('trust')
    .description('manage trusted workload issuers (OIDC tokens exchanged for sessions, RFC 8693)');
  trust
    .command('add')
    .description("trust an issuer's workload tokens, mapping their claims to principals")
    .argument('<name>', 'lower-case name, unique in the tenant')
    .requiredOption('--issuer <url>', 'the exact iss of accepted tokens')
    .requiredOption('--audience <aud>', 'the aud accepted tokens must carry')
    .option('--jwks-uri <url>', 'where the issuer publishes its keys (https; http on loopback only)')
    .option('--jwks-file <file>', "the issuer's public keys, a JWKS or JWK file, stored inline")
    .option(
      '--alg <alg>',
      'an allowed signature algorithm (repeatable; default RS256, ES256, EdDSA)',
      collectList,
    )
    .requiredOption(
      '--map <claim=value,…:principal>',
      'a mapping rule: claims (exact, or globs with *) to a non-human principal; repeatable, first match wins',
      collectMapping,
    )
    .option(
      '--claim <name>',
      'a claim (or path into nested claims, e.g. kubernetes.io/namespace) policies see as the principal tag claim:<name> (repeatable)',
      (v: string, p: string[] | undefined) => collectList(parseClaimName(v), p),
    )
    .option(
      '--task-claim <name>',
      'the claim whose value becomes the ticket (default run_id)',
      parseClaimName,
    )
    .option(
      '--max-token-age <duration>',
      'oldest token (by iat) accepted, e.g. 10m (default 10m)',
      parseDuration,
    )
    .option(
      '--ends-with-subject-token',
      "sessions end, at the latest, when the workload's token expires (e.g. Kubernetes projected tokens)",
    )
    .action(async (name: string, flags: TrustFlags, command: Command) => {
      const body = federationBody(name, flags);
      const session = new Session(command);
      const created = await session.call<FederationView>('POST', '/v1/federations', body);
      if (session.json) return printJson(created);
      say(federationDetails(created, await lookUpNames(session, ['principals'])));
    });
  trust
    .command('list')
    .description('list the trusted issuers of the tenant')
    .action(async (_f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<FederationList>('GET', '/v1/federations');
      if (session.json) return printJson(answer);
      if (answer.federations.length === 0) return say('no trusted issuers');
      say(
        renderTable(
          ['NAME', 'ISSUER', 'AUDIENCE', 'KEYS', 'RULES', 'ID'],
          answer.federations.map((f) => [
            f.name,
            f.issuer,
            f.audience,
            keysText(f),
            String(f.principal_mapping.length),
            f.id,
          ]),
        ),
      );
    });
  trust
    .command('show')
    .description('show a trusted issuer and its mapping rules')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<FederationView>('GET', `/v1/federations/${seg(ref)}`);
      if (session.json) return printJson(answer);
      say(federationDetails(answer, await lookUpNames(session, ['principals'])));
    });
  trust
    .command('remove')
    .description('stop trusting an issuer; the live sessions it admitted end (trust_changed)')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<{ deleted: boolean }>('DELETE', `/v1/federations/${seg(ref)}`);
      session.emit(answer, () => say(`removed trust ${ref}; the live sessions it admitted have ended`));
    });
}
