import type { StoreHandle } from '../store/database.js';

/**
 * Broker-API tokens obtained by `tether login` (device authorization, console/device-login.ts)
 * name their login instead of a registered key: `login:<id>` in the client key claim. Like a
 * key's removal, the login's end (`tether logout`) stops the token on its very next call.
 */
export const LOGIN_KID_PREFIX = 'login:';

/** The login id a token's client key claim names, if it names one. */
export function loginIdOf(clientKid: string): string | undefined {
  return clientKid.startsWith(LOGIN_KID_PREFIX) ? clientKid.slice(LOGIN_KID_PREFIX.length) : undefined;
}

/** Whether the login is live (its token issued, not ended) and the principal's. */
export async function loginIsLive(h: StoreHandle, loginId: string, principalId: string): Promise<boolean> {
  const row = await h.db
    .selectFrom('device_logins')
    .select(['state', 'principal_id'])
    .where('id', '=', loginId)
    .executeTakeFirst();
  return row?.state === 'used' && row.principal_id === principalId;
}
