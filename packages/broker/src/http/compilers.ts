import { createRequire } from 'node:module';
import type { FastifyServerOptions } from 'fastify';

// Fastify's default compilers are created per server, so every server compiles every route's
// validator (Ajv) and response serializer (fast-json-stringify) again: about half a second for
// this API. A process that builds more than one server (replicas behind one listener, the test
// suites) shares one pool instead. The pool is keyed as Fastify's own is: validators by the shared
// schemas and Ajv options (@fastify/ajv-compiler's pool, then Ajv's cache by schema object),
// serializers by the schema object and the serializer options. Route schemas are module
// constants, so the same object always compiles to the same function. (With a compiler of its
// own, Fastify compiles a `headers` schema as given instead of lower-casing its keys first; no
// route of this API validates headers by schema.)
const require = createRequire(import.meta.url);
const ValidatorSelector: () => ValidatorFactory = require('@fastify/ajv-compiler');
const {
  SerializerSelector,
}: { SerializerSelector: () => SerializerFactory } = require('@fastify/fast-json-stringify-compiler');

type ValidatorFactory = NonNullable<
  NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']
>['buildValidator'];
type SerializerFactory = (
  externalSchemas: unknown,
  options: unknown,
) => (route: {
  schema: object;
  method: string;
  url: string;
  httpStatus: string;
}) => (data: unknown) => string;

const buildValidator = ValidatorSelector();
const serializerFactory = SerializerSelector();
/** Per (shared schemas, options): compiled serializers by schema object. */
const serializerPools = new Map<string, WeakMap<object, (data: unknown) => string>>();

function buildSerializer(externalSchemas: unknown, options: unknown) {
  const key = JSON.stringify([externalSchemas, options]);
  let pool = serializerPools.get(key);
  if (pool === undefined) {
    pool = new WeakMap();
    serializerPools.set(key, pool);
  }
  const compile = serializerFactory(externalSchemas, options);
  const compiled = pool;
  return (route: { schema: object; method: string; url: string; httpStatus: string }) => {
    let serialize = compiled.get(route.schema);
    if (serialize === undefined) {
      serialize = compile(route);
      compiled.set(route.schema, serialize);
    }
    return serialize;
  };
}

/** `schemaController` for every server this process builds. */
export const sharedSchemaCompilers = {
  compilersFactory: { buildValidator, buildSerializer },
} as unknown as NonNullable<FastifyServerOptions['schemaController']>;
