import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { type AddressInfo, createServer as createTcpServer, type Socket } from 'node:net';
import type { OutboundSettings } from '../../packages/broker/src/net/outbound.js';

/**
 * Targets for the SSRF tests (test/security/ssrf-outbound*.test.ts): real servers on loopback,
 * each standing for something an attacker would aim the broker at.
 */

/** Destinations no URL may name unless the operator allows them. */
export const FORBIDDEN = [
  'https://127.0.0.1:9/jwks',
  'https://10.0.0.1/jwks',
  'https://169.254.169.254/latest/meta-data/',
  'https://[::1]/jwks',
  'https://[::ffff:127.0.0.1]/jwks',
  'https://0.0.0.0/jwks',
  'https://2130706433/jwks', // 127.0.0.1 spelt as a number
  'https://localhost/jwks',
  'https://api.localhost/jwks',
  'https://192.168.1.1/jwks',
  'https://172.16.0.1/jwks',
  'https://100.64.0.1/jwks',
  'https://[fd00::1]/jwks',
  'https://[fe80::1]/jwks',
  'https://224.0.0.1/jwks',
  'http://issuer.example/jwks', // clear text to a public host
];

/** A loopback HTTP server that counts what reaches it and answers as told. */
export async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  let hits = 0;
  const server: Server = createHttpServer((req, res) => {
    hits += 1;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (path = '/jwks') => `http://127.0.0.1:${port}${path}`,
    hits: () => hits,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port nothing listens on. */
export async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A port where something that is not HTTP answers (a database, an SMTP server…). */
export async function rawTcp(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.end('220 internal-smtp ESMTP ready\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Streams `total` bytes of a would-be JWKS without a Content-Length, honouring backpressure, and
 * reports how much the connection took before it was cut and whether it ever finished.
 */
export function hugeBody(total: number, declare = false) {
  const seen = { written: 0, finished: false, closed: false };
  const handler = (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, {
      'content-type': 'application/json',
      ...(declare ? { 'content-length': String(total) } : {}),
    });
    res.on('close', () => {
      seen.closed = true;
    });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = () => {
      while (!seen.closed && seen.written < total) {
        seen.written += chunk.byteLength;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      if (!seen.closed) res.end(() => (seen.finished = true));
    };
    res.write('{"keys":[],"pad":"');
    pump();
  };
  return { seen, handler };
}

/** Every TCP connection this process opens, by destination. */
export function connectionsTo(spy: { mock: { calls: unknown[][] } }, host: string): number {
  return spy.mock.calls.filter((args) => JSON.stringify(args[0] ?? null).includes(host)).length;
}

/** Outbound settings for a client built by a test: nothing allowed unless said. */
export const settings = (o: Partial<OutboundSettings> = {}): OutboundSettings => ({
  allowHosts: [],
  allowHttp: false,
  maxResponseBytes: 64 * 1024,
  timeoutMs: 5000,
  ...o,
});
