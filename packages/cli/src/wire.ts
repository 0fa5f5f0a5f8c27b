/**
 * The few values of the wire protocol that the CLI needs before a verb runs (option choices)
 * or when it fails, copied from `@tether-broker/protocol`: its index also exports the API's
 * TypeBox schemas, and loading them (some 200 modules) would more than double a client verb's
 * start-up. `wire.test.ts` checks that these equal the protocol's own; types are still
 * imported from the protocol (`import type` costs nothing at run time).
 */
import type { TetherError } from '@tether-broker/protocol';

export const PRINCIPAL_KINDS = ['human', 'service', 'pipeline', 'agent', 'workload'] as const;
export const ROLES = ['admin', 'auditor', 'pep', 'receiver'] as const;
export const REQUEST_STATES = ['pending', 'approved', 'denied', 'expired', 'cancelled'] as const;

/**
 * An error raised in this process by the broker's own code (`server`, `init`, `keys`): the
 * protocol's `TetherError`, recognised by its name and fields rather than by `instanceof`,
 * which would load the protocol's schemas on every run.
 */
export function isTetherError(err: unknown): err is TetherError {
  if (!(err instanceof Error) || err.name !== 'TetherError') return false;
  const { code, detail } = err as { code?: unknown; detail?: unknown };
  return typeof code === 'string' && typeof detail === 'string';
}
