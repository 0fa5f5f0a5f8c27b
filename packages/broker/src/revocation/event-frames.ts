import { SSE_REVOCATION_EVENT } from '@tether-broker/protocol';
import type { RevocationLogEntry } from './log.js';
import type { RevocationSigner } from './signing.js';

/** One Server-Sent Events message. `data` may not hold a line break (a JWS never does). */
export function sseMessage(message: { id?: number; event: string; data: string }): string {
  if (/[\r\n]/.test(message.event) || /[\r\n]/.test(message.data))
    throw new Error('an SSE field may not contain a line break');
  return `${message.id === undefined ? '' : `id: ${message.id}\n`}event: ${message.event}\ndata: ${message.data}\n\n`;
}

/**
 * Each revocation event as the SSE message every stream sends, signed once (the signer shares
 * the signature) and framed once: the streams one commit wakes write the same bytes, so a
 * revocation to two hundred PEPs costs one signature, one encoding and two hundred writes.
 * Bounded, oldest first; a frame is rebuilt when the signature changed (the key rotated).
 */
export class SharedEventFrames {
  readonly #frames = new Map<string, { jws: string; bytes: Buffer }>();

  constructor(
    private readonly signer: RevocationSigner,
    private readonly maxEntries = 1024,
  ) {}

  async get(entry: RevocationLogEntry): Promise<Buffer> {
    const jws = await this.signer.event(entry);
    const key = `${entry.tenantId}\u0000${entry.seq}`;
    const framed = this.#frames.get(key);
    if (framed?.jws === jws) return framed.bytes;
    const bytes = Buffer.from(sseMessage({ id: entry.seq, event: SSE_REVOCATION_EVENT, data: jws }));
    if (framed === undefined && this.#frames.size >= this.maxEntries) {
      const oldest = this.#frames.keys().next();
      if (!oldest.done) this.#frames.delete(oldest.value);
    }
    this.#frames.set(key, { jws, bytes });
    return bytes;
  }
}
