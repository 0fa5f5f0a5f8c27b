import { BrokerError } from '../../packages/client/src/index.js';

/** Awaits a call that the broker must refuse, and answers its error (a pass is a failure). */
export async function refusal(p: Promise<unknown>): Promise<BrokerError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof BrokerError) return err;
    throw err;
  }
  throw new Error('expected the broker to refuse');
}
