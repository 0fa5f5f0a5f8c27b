// One process of a fleet of enforcement points (createEnforcer, each with its own SSE
// connection, its own mirror of the revocation log, all starting from position 0). The runner
// starts every process's enforcers at the same moment, learns how long each took to become
// fresh, then has each decide real sessions' requests.
import { setTimeout as sleep } from 'node:timers/promises';
import { serveParent } from '../../bench/lib/processes.mjs';
import { sessionKeyFromJwk } from '../../packages/client/dist/index.js';
import { createEnforcer } from '../../packages/pep/dist/index.js';
import { decide } from './decide.mjs';

let enforcers = [];
let setup;
/** What the enforcers warned about (stream failures, refused messages), counted by message. */
const warnings = new Map();
const count = (obj, msg) => {
  const key = `${msg}: ${obj?.err ?? obj?.code ?? ''}`.slice(0, 160);
  warnings.set(key, (warnings.get(key) ?? 0) + 1);
};
const log = { debug() {}, info() {}, warn: count, error: count };

/** A session as sent over IPC (its key as a JWK), with its key usable for proofs again. */
async function revive(session) {
  return { ...session, key: await sessionKeyFromJwk(session.privateJwk) };
}

/** Polls every enforcer until all are fresh or `timeoutMs` passes; answers ms to fresh (or null). */
async function untilFresh(startedAt, timeoutMs) {
  const freshAfter = enforcers.map(() => null);
  const connectedAfter = enforcers.map(() => null);
  const caughtUpAfter = enforcers.map(() => null);
  let pending = enforcers.length;
  while (pending > 0 && performance.now() - startedAt < timeoutMs) {
    for (let i = 0; i < enforcers.length; i++) {
      const state = enforcers[i].state();
      const at = performance.now() - startedAt;
      if (connectedAfter[i] === null && state.connected) connectedAfter[i] = at;
      if (caughtUpAfter[i] === null && state.position > 0) caughtUpAfter[i] = at;
      if (freshAfter[i] === null && state.fresh) {
        freshAfter[i] = at;
        pending--;
      }
    }
    await sleep(20);
  }
  return { freshAfter, connectedAfter, caughtUpAfter };
}

serveParent(
  {
    /** `{ count, broker, tenant, audience, identity, budgetMs }`: creates the enforcers, unstarted. */
    async create(message) {
      setup = message;
      enforcers = Array.from({ length: message.count }, () =>
        createEnforcer({
          broker: message.broker,
          audience: message.audience,
          tenant: message.tenant,
          publicBaseUrl: message.audience,
          identity: message.identity,
          stalenessBudgetMs: message.budgetMs,
          decisions: false,
          log,
        }),
      );
      return { type: 'created' };
    },
    /** Starts every enforcer at once; answers when all are fresh (or after `timeoutMs`). */
    async start({ timeoutMs }) {
      const startedAt = performance.now();
      for (const enforcer of enforcers) enforcer.start();
      const times = await untilFresh(startedAt, timeoutMs);
      return {
        type: 'started',
        ...times,
        warnings: Object.fromEntries(warnings),
        heapMiB: process.memoryUsage().heapUsed / 2 ** 20,
      };
    },
    /**
     * `{ sessions: [{ expect: 'allow' | 'refuse', session }] }`: each enforcer decides one request
     * of each session; answers the decisions that were not what was expected.
     */
    async check({ sessions: sent }) {
      const sessions = await Promise.all(sent.map(async (s) => ({ ...s, session: await revive(s.session) })));
      const wrong = [];
      for (let i = 0; i < enforcers.length; i++) {
        for (const { expect, session, label } of sessions) {
          const d = await decide(enforcers[i], setup.audience, session);
          const refused = !d.allow && d.status === 401;
          if ((expect === 'allow' && !d.allow) || (expect === 'refuse' && !refused))
            wrong.push(
              `pep ${i}, ${label}: ${d.allow ? 'allowed' : `${d.status} ${d.code}: ${d.description}`}`,
            );
        }
      }
      return { type: 'checked', wrong: wrong.slice(0, 20), wrongCount: wrong.length };
    },
    /** Waits until every enforcer refuses `session` (ended just now); answers ms per enforcer. */
    async refuses({ session: sent, timeoutMs }) {
      const session = await revive(sent);
      const startedAt = performance.now();
      const after = enforcers.map(() => null);
      let pending = enforcers.length;
      while (pending > 0 && performance.now() - startedAt < timeoutMs) {
        for (let i = 0; i < enforcers.length; i++) {
          if (after[i] !== null) continue;
          const d = await decide(enforcers[i], setup.audience, session);
          if (!d.allow && d.status === 401) {
            after[i] = performance.now() - startedAt;
            pending--;
          }
        }
        if (pending > 0) await sleep(5);
      }
      return { type: 'refused', after };
    },
  },
  async () => {
    await Promise.all(enforcers.map((e) => e.close()));
  },
);
