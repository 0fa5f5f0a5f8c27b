/**
 * How the broker validates requests against its route schemas: Fastify's own Ajv compiler
 * (`@fastify/ajv-compiler`) with these options. Kept in one place so that anything that must
 * judge a request exactly as the broker does (the API fuzz test's oracle) builds the identical
 * validator instead of re-implementing its rules.
 */
export const AJV_CUSTOM_OPTIONS: { removeAdditional: false; coerceTypes: 'array'; allErrors: false } = {
  // An unknown field is an error, never silently dropped: a typo must fail loudly.
  removeAdditional: false,
  // Query strings carry strings and repeated keys; coerce them as Fastify documents.
  coerceTypes: 'array',
  // Stop at the first error: collecting every error of a hostile document is a DoS lever.
  allErrors: false,
};
