import { type Static, Type } from '@sinclair/typebox';

/** `GET /healthz`: the process answers. */
export const HealthView = Type.Object({ status: Type.Literal('ok') });
export type HealthView = Static<typeof HealthView>;

/** `GET /readyz`: whether this instance can serve, with its store (200 or 503, same shape). */
export const ReadinessView = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
  store: Type.String(),
  /** Why not ready: `unreachable`, `not_writable`, `schema_not_current` or `timed_out`. */
  readiness: Type.String(),
});
export type ReadinessView = Static<typeof ReadinessView>;
