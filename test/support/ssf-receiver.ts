import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, decodeJwt, type JSONWebKeySet, type JWTPayload, jwtVerify } from 'jose';

/** One push as the receiver saw it. */
export interface ReceivedPush {
  jws: string;
  contentType: string | undefined;
  authorization: string | undefined;
  /** Decoded, not verified: verify with {@link verifySet}. */
  claims: JWTPayload;
  /** What the receiver answered. */
  answered: number;
}

/** How the receiver answers the next pushes. */
export type ReceiverMode =
  | { kind: 'accept' }
  | { kind: 'unavailable' }
  | { kind: 'refuse'; err: string; description: string };

/**
 * A real RFC 8935 push endpoint on loopback: records every SET POSTed to it and answers as
 * told (202, 503, or 400 with `{err, description}`; `next` first, then `mode`). `down()` closes the port (connection
 * refused); `up()` listens on the same port again.
 */
export class SetReceiver {
  readonly pushes: ReceivedPush[] = [];
  /** How it answers, once `next` is used up. */
  mode: ReceiverMode = { kind: 'accept' };
  /** Answers for the next pushes, one each, before `mode` applies again. */
  readonly next: ReceiverMode[] = [];
  #server: Server;
  #port = 0;

  private constructor() {
    this.#server = this.#newServer();
  }

  static async start(): Promise<SetReceiver> {
    const receiver = new SetReceiver();
    await receiver.up();
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}/events`;
  }

  /** The SETs it accepted, in the order it accepted them. */
  get accepted(): ReceivedPush[] {
    return this.pushes.filter((p) => p.answered === 202);
  }

  #newServer(): Server {
    return createServer((req, res) => void this.#handle(req, res));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const jws = Buffer.concat(chunks).toString('utf8');
    const mode = this.next.shift() ?? this.mode;
    const answer =
      mode.kind === 'accept'
        ? { status: 202, body: '' }
        : mode.kind === 'unavailable'
          ? { status: 503, body: '' }
          : { status: 400, body: JSON.stringify({ err: mode.err, description: mode.description }) };
    this.pushes.push({
      jws,
      contentType: req.headers['content-type'],
      authorization: req.headers.authorization,
      claims: decodeJwt(jws),
      answered: answer.status,
    });
    res.writeHead(answer.status, answer.body ? { 'content-type': 'application/json' } : {});
    res.end(answer.body);
  }

  async up(): Promise<void> {
    if (this.#server.listening) return;
    this.#server = this.#newServer();
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  async down(): Promise<void> {
    if (!this.#server.listening) return;
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * Verifies a SET as a receiver must (SSF 1.0 §4): the signature against the broker's JWKS,
 * `typ` `secevent+jwt`, the issuer and the audience; no `sub`, no `exp`.
 */
export async function verifySet(
  jws: string,
  jwks: JSONWebKeySet,
  expect: { issuer: string; audience: string },
): Promise<JWTPayload> {
  const { payload, protectedHeader } = await jwtVerify(jws, createLocalJWKSet(jwks), {
    issuer: expect.issuer,
    audience: expect.audience,
    typ: 'secevent+jwt',
    algorithms: ['EdDSA'],
  });
  if (protectedHeader.kid === undefined) throw new Error('SET without kid');
  if ('sub' in payload || 'exp' in payload) throw new Error('SSF SETs carry neither sub nor exp');
  return payload;
}
