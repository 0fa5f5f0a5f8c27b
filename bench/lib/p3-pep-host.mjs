// One process of P3's enforcement points: many enforcers (createEnforcer, each with its own
// PEP principal and its own SSE connection to its broker replica). For each revocation the
// runner arms them with a live session's token and two proofs; each enforcer first allows a
// request with the first proof (the session is live there), and once its mirror has applied
// the next event it decides a request with the second proof: the time it is refused is when
// that PEP enforces the end.
import { createEnforcer } from '../../packages/pep/dist/index.js';
import { serveParent, wallNow } from './processes.mjs';

const PATH = '/status';
let peps = [];
let requirement;
/** The revocation under way: `{ round, token, check, pending, applied[], denied[], failures[] }`. */
let round;

function request(token, proof) {
  return {
    method: 'GET',
    url: PATH,
    headers: { authorization: `DPoP ${token}`, dpop: proof },
    ...requirement,
  };
}

function finishIfDone() {
  if (round === undefined || round.pending > 0) return;
  const { id, applied, denied, replicas, failures } = round;
  round = undefined;
  process.send({ type: 'enforced', round: id, applied, denied, replicas, failures });
}

/** What enforcer `index` does after applying an event during a round: decide the armed request. */
async function onApplied(index) {
  const current = round;
  if (current === undefined || current.done[index]) return;
  current.done[index] = true;
  const appliedAt = wallNow();
  try {
    const decision = await peps[index].enforcer.authorize(request(current.token, current.check));
    if (
      !decision.allow &&
      decision.code === 'invalid_token' &&
      /session has ended/.test(decision.description)
    ) {
      current.applied.push(appliedAt);
      current.denied.push(wallNow());
      current.replicas.push(peps[index].replica);
    } else {
      current.failures.push(
        `pep ${index}: ${decision.allow ? 'allowed' : `${decision.code}: ${decision.description}`}`,
      );
    }
  } catch (err) {
    current.failures.push(`pep ${index}: ${err.message}`);
  }
  current.pending -= 1;
  if (current === round) finishIfDone();
}

serveParent(
  {
    /** `{ peps: [{ broker, identity, replica }], issuer, tenant, audience, requirement }`: starts them all, answers when all are fresh. */
    async start(options) {
      requirement = options.requirement;
      peps = options.peps.map((p, index) => {
        const entry = { replica: p.replica };
        entry.enforcer = createEnforcer({
          broker: p.broker,
          issuer: options.issuer,
          audience: options.audience,
          tenant: options.tenant,
          publicBaseUrl: options.audience,
          identity: p.identity,
          decisions: false,
          onApplied: () => void onApplied(index),
        });
        return entry;
      });
      for (const p of peps) p.enforcer.start();
      const deadline = Date.now() + 60_000;
      while (!peps.every((p) => p.enforcer.state().fresh)) {
        if (Date.now() > deadline) {
          const stale = peps.filter((p) => !p.enforcer.state().fresh);
          throw new Error(
            `${stale.length} enforcers never got fresh: ${stale[0].enforcer.state().lastError}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return { type: 'started' };
    },

    /** `{ round, token, warm, check }`: every enforcer allows the warm request; then waits for the end. */
    async arm(message) {
      let allowed = 0;
      const refusals = [];
      for (const p of peps) {
        const decision = await p.enforcer.authorize(request(message.token, message.warm));
        if (decision.allow) allowed += 1;
        else refusals.push(`${decision.code}: ${decision.description}`);
      }
      round = {
        id: message.round,
        token: message.token,
        check: message.check,
        pending: peps.length,
        done: new Array(peps.length).fill(false),
        applied: [],
        denied: [],
        replicas: [],
        failures: [],
      };
      return { type: 'armed', round: message.round, allowed, refusals: refusals.slice(0, 3) };
    },

    /** The runner gave up on the round: report what there is. */
    async flush(message) {
      if (round?.id === message.round) {
        round.failures.push(`${round.pending} enforcers had not applied the event`);
        round.pending = 0;
        finishIfDone();
      }
    },
  },
  async () => {
    await Promise.all(peps.map((p) => p.enforcer.close()));
  },
);
