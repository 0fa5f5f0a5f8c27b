import { TetherError } from '@tether-broker/protocol';

/**
 * A principal's contract window (a contractor's engagement), epoch milliseconds; null for no
 * bound on that side. Outside it the principal may not request, be approved or hold a session,
 * and no session of the principal lasts past `endsAt`.
 */
export interface ContractWindow {
  startsAt: number | null;
  endsAt: number | null;
}

/** What a change sets: a side given replaces it (null clears it), a side left out is kept. */
export interface ContractChange {
  startsAt?: number | null | undefined;
  endsAt?: number | null | undefined;
}

/** Whether the window lets the principal act at `now`: started, and not yet ended. */
export function contractActiveAt(contract: ContractWindow | undefined, now: number): boolean {
  if (!contract) return true;
  if (contract.startsAt !== null && now < contract.startsAt) return false;
  return contract.endsAt === null || now < contract.endsAt;
}

/**
 * Refuses with `contract_not_active` outside the window.
 *
 * @example
 * ```ts
 * assertContractActive(caller.principal, ctx.clock.now()); // before asking policy anything
 * ```
 */
export function assertContractActive(
  principal: { name: string; contract?: ContractWindow | undefined },
  now: number,
): void {
  const { contract } = principal;
  if (contractActiveAt(contract, now) || !contract) return;
  const started = contract.startsAt === null || now >= contract.startsAt;
  throw new TetherError(
    'contract_not_active',
    started
      ? `the contract of ${principal.name} ended at ${iso(contract.endsAt)}`
      : `the contract of ${principal.name} starts at ${iso(contract.startsAt)}`,
  );
}

/**
 * An extension of a session of `principal` may only be asked inside the contract window, and
 * only while the session ends before the contract does: an extension is capped at the
 * contract's end (see applyExtension), so one that could add nothing is refused at once
 * (`duration_exceeds_max`, `max_extension: 0`).
 */
export function assertExtensionWithinContract(
  principal: { name: string; contract?: ContractWindow | undefined },
  session: { id: string; hardExpiresAt: number },
  now: number,
): void {
  assertContractActive(principal, now);
  const endsAt = principal.contract?.endsAt ?? null;
  if (endsAt !== null && session.hardExpiresAt >= endsAt)
    throw new TetherError(
      'duration_exceeds_max',
      `session ${session.id} already lasts until the contract of ${principal.name} ends (${iso(endsAt)}); it cannot be extended`,
      { extra: { max_extension: 0 } },
    );
}

/** `expiry` capped at the end of the window: no session outlives the contract it depends on. */
export function capAtContractEnd(contract: ContractWindow | undefined, expiry: number): number {
  return contract?.endsAt == null ? expiry : Math.min(expiry, contract.endsAt);
}

/**
 * Why a session that reached its hard expiry ended: `contract_ended` when that expiry was the
 * contract's end (the session was capped at it), else `expired`.
 */
export function expiryReason(
  contract: ContractWindow | undefined,
  hardExpiresAt: number,
): 'contract_ended' | 'expired' {
  return contract?.endsAt != null && hardExpiresAt >= contract.endsAt ? 'contract_ended' : 'expired';
}

/**
 * The window a change leaves, or undefined for none. Refuses (`invalid_contract_window`) an
 * end not after the start and, when `creating`, an end already past: a principal created
 * out of contract would be a record of nothing. A change may move the end into the past; that
 * ends the principal's sessions.
 */
export function changedContract(
  current: ContractWindow | undefined,
  change: ContractChange | null | undefined,
  now: number,
  creating: boolean,
): ContractWindow | undefined {
  if (change === undefined) return current;
  const next: ContractWindow = {
    startsAt:
      change === null ? null : change.startsAt === undefined ? (current?.startsAt ?? null) : change.startsAt,
    endsAt: change === null ? null : change.endsAt === undefined ? (current?.endsAt ?? null) : change.endsAt,
  };
  if (next.startsAt !== null && next.endsAt !== null && next.endsAt <= next.startsAt)
    throw new TetherError(
      'invalid_contract_window',
      `the contract must end after it starts (${iso(next.startsAt)}), not at ${iso(next.endsAt)}`,
    );
  if (creating && next.endsAt !== null && next.endsAt <= now)
    throw new TetherError(
      'invalid_contract_window',
      `the contract end ${iso(next.endsAt)} has already passed`,
    );
  return next.startsAt === null && next.endsAt === null ? undefined : next;
}

/** Whether the change moved the window so that it covers less time than before. */
export function contractNarrowed(
  before: ContractWindow | undefined,
  after: ContractWindow | undefined,
): boolean {
  const start = (w: ContractWindow | undefined) => w?.startsAt ?? Number.NEGATIVE_INFINITY;
  const end = (w: ContractWindow | undefined) => w?.endsAt ?? Number.POSITIVE_INFINITY;
  return start(after) > start(before) || end(after) < end(before);
}

function iso(ms: number | null): string {
  return ms === null ? 'never' : new Date(ms).toISOString();
}
