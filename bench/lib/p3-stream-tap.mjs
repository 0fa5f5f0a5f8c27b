// P3's view of the broker's fan-out from outside: many raw revocation streams (GET /v1/events,
// each authenticated as its own PEP principal with a DPoP-bound token, as a PEP's is) that only
// note when each `revocation` message arrives, without verifying or applying it. The time from
// the end call's return until the last of them has the event is the broker's fan-out (its read
// of the log, one signature, N writes) plus loopback delivery; the spread between the first and
// the last arrival is the fan-out alone.
import { BrokerClient } from '../../packages/client/dist/index.js';
import { serveParent, wallNow } from './processes.mjs';

/** Per revocation sequence number: when each stream received it. */
const arrivals = new Map();
let streams = 0;
let reported = 0;
const controllers = [];
let wake;

async function follow(identity, ready) {
  const controller = new AbortController();
  controllers.push(controller);
  const response = await new BrokerClient({ identity }).stream('/v1/events', controller.signal);
  ready();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of response.body) {
      const at = wallNow();
      buffer += decoder.decode(chunk, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const id = /^id: (\d+)$/m.exec(message);
        if (id && /^event: revocation$/m.test(message)) {
          const seq = Number(id[1]);
          const seen = arrivals.get(seq) ?? [];
          seen.push(at);
          arrivals.set(seq, seen);
          wake?.();
        }
        end = buffer.indexOf('\n\n');
      }
    }
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  }
}

/** The first revocation after the last one reported that every stream has received. */
function complete() {
  for (const seq of [...arrivals.keys()].sort((a, b) => a - b)) {
    if (seq <= reported) continue;
    if (arrivals.get(seq).length === streams) return seq;
  }
  return undefined;
}

serveParent(
  {
    /** `{ identities }`: opens one stream per identity; answers once all are open. */
    async start({ identities }) {
      streams = identities.length;
      await Promise.all(
        identities.map((identity) => new Promise((ready, fail) => void follow(identity, ready).catch(fail))),
      );
      return { type: 'started' };
    },

    /** `{ round, timeoutMs }`: waits for the next revocation every stream has; its first and last arrival. */
    async await({ round, timeoutMs }) {
      const deadline = Date.now() + timeoutMs;
      let seq = complete();
      while (seq === undefined && Date.now() < deadline) {
        await new Promise((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50);
        });
        seq = complete();
      }
      if (seq === undefined) return { type: 'arrived', round, failed: true };
      reported = seq;
      const times = arrivals.get(seq);
      for (const old of arrivals.keys()) if (old <= seq) arrivals.delete(old);
      return { type: 'arrived', round, seq, first: Math.min(...times), last: Math.max(...times) };
    },
  },
  async () => {
    for (const c of controllers) c.abort();
  },
);
