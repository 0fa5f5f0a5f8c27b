import type { Migration } from 'kysely';
import * as m0001 from './0001-initial.js';
import * as m0002 from './0002-sessions.js';
import * as m0003 from './0003-federations.js';
import * as m0004 from './0004-revocation-log.js';
import * as m0005 from './0005-enforcement.js';
import * as m0006 from './0006-tickets.js';
import * as m0007 from './0007-continuous-evaluation.js';
import * as m0008 from './0008-ssf.js';
import * as m0009 from './0009-idle-and-extensions.js';
import * as m0010 from './0010-signing-key-seals.js';
import * as m0011 from './0011-keyed-audit-chain.js';
import * as m0013 from './0013-pep-audiences-and-instances.js';
import * as m0015 from './0015-subject-token-uses.js';
import * as m0017 from './0017-store-probe.js';
import * as m0018 from './0018-status-list-version.js';
import * as m0019 from './0019-sweeper-indexes.js';
import * as m0020 from './0020-connectors.js';
import * as m0021 from './0021-recordings.js';
import * as m0022 from './0022-access-request-tasks.js';
import * as m0023 from './0023-delegation-and-token-bound-sessions.js';
import * as m0024 from './0024-notifications.js';
import * as m0025 from './0025-console-sign-in.js';
import * as m0026 from './0026-console-oidc.js';
import * as m0027 from './0027-console-verification.js';
import * as m0028 from './0028-device-logins.js';
import * as m0029 from './0029-principal-contracts.js';
import * as m0030 from './0030-provider-relationships.js';
import * as m0031 from './0031-status-list-occupancy.js';

/**
 * Every migration, in order. Listed explicitly (no directory scanning) so the build carries
 * them and the broker knows exactly which schema versions it understands.
 */
export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-initial': m0001,
  '0002-sessions': m0002,
  '0003-federations': m0003,
  '0004-revocation-log': m0004,
  '0005-enforcement': m0005,
  '0006-tickets': m0006,
  '0007-continuous-evaluation': m0007,
  '0008-ssf': m0008,
  '0009-idle-and-extensions': m0009,
  '0010-signing-key-seals': m0010,
  '0011-keyed-audit-chain': m0011,
  '0013-pep-audiences-and-instances': m0013,
  '0015-subject-token-uses': m0015,
  '0017-store-probe': m0017,
  '0018-status-list-version': m0018,
  '0019-sweeper-indexes': m0019,
  '0020-connectors': m0020,
  '0021-recordings': m0021,
  '0022-access-request-tasks': m0022,
  '0023-delegation-and-token-bound-sessions': m0023,
  '0024-notifications': m0024,
  '0025-console-sign-in': m0025,
  '0026-console-oidc': m0026,
  '0027-console-verification': m0027,
  '0028-device-logins': m0028,
  '0029-principal-contracts': m0029,
  '0030-provider-relationships': m0030,
  '0031-status-list-occupancy': m0031,
};

export const KNOWN_MIGRATIONS = Object.keys(MIGRATIONS);
