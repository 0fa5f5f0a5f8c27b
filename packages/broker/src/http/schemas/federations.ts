import { Type } from '@sinclair/typebox';
import { Jwk, Name, Ref, Strict } from '@tether-broker/protocol/api';
import { FEDERATION_LIMITS } from '../../domain/federation.js';

/**
 * The body of a new trust record: its limits are the broker's own (domain/federation.ts), so it
 * stays here; the answers (FederationView, FederationList) live in `@tether-broker/protocol`.
 */

/**
 * The shape of a claim path; its segments, depth and length are checked by the broker
 * (`claimPathProblem`), whose refusal says which rule a path breaks.
 */
const CLAIM_PATH_PATTERN = '^[A-Za-z0-9_./-]+$';
const CLAIM_PATH_MAX_LENGTH = 256;
const ClaimName = Type.String({
  pattern: CLAIM_PATH_PATTERN,
  maxLength: CLAIM_PATH_MAX_LENGTH,
  description:
    'a claim of the workload token: a name, or a path into nested claims (kubernetes.io/namespace)',
});

const Conditions = Type.Record(
  Type.String({ pattern: CLAIM_PATH_PATTERN, maxLength: CLAIM_PATH_MAX_LENGTH }),
  Type.String({ minLength: 1, maxLength: 512 }),
  {
    minProperties: 1,
    maxProperties: FEDERATION_LIMITS.maxConditions,
    // TypeBox checks only the keys that match the key pattern; refuse every other key.
    additionalProperties: false,
    description: 'claim -> exact value, or a glob where * matches any run of characters; all must hold',
  },
);

const MappingRuleBody = Type.Object(
  { match: Conditions, principal: Ref },
  { ...Strict, description: 'the first rule whose every condition holds names the principal (name or id)' },
);

const JwksBody = Type.Object({ keys: Type.Array(Jwk, { minItems: 1, maxItems: 16 }) }, Strict);

export const NewFederationBody = Type.Object(
  {
    name: Name,
    issuer: Type.String({ minLength: 1, maxLength: 512, description: 'the exact iss of accepted tokens' }),
    audience: Type.String({
      minLength: 1,
      maxLength: 512,
      description: 'the aud accepted tokens carry; unique per issuer across all tenants',
    }),
    jwks_uri: Type.Optional(
      Type.String({ minLength: 1, maxLength: 2048, description: 'https (http only on loopback)' }),
    ),
    jwks: Type.Optional(JwksBody),
    algorithms: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 16 }), {
        minItems: 1,
        maxItems: 16,
        description: 'allowed asymmetric algorithms; default RS256, ES256, EdDSA',
      }),
    ),
    principal_mapping: Type.Array(MappingRuleBody, { minItems: 1, maxItems: FEDERATION_LIMITS.maxRules }),
    context_claims: Type.Optional(
      Type.Array(ClaimName, {
        maxItems: FEDERATION_LIMITS.maxContextClaims,
        description: 'claims policies see as principal tags claim:<path>',
      }),
    ),
    task_claim: Type.Optional(
      Type.String({
        pattern: CLAIM_PATH_PATTERN,
        maxLength: CLAIM_PATH_MAX_LENGTH,
        description: 'its value becomes the ticket; default run_id',
      }),
    ),
    max_token_age: Type.Optional(
      Type.Integer({
        minimum: FEDERATION_LIMITS.minTokenAgeSeconds,
        maximum: FEDERATION_LIMITS.maxTokenAgeSeconds,
        description: 'seconds since the token was issued (iat); default 600',
      }),
    ),
    ends_with_subject_token: Type.Optional(
      Type.Boolean({
        description:
          'the session ends, at the latest, when the subject token expires (its exp); default false',
      }),
    ),
  },
  Strict,
);
