import { readFileSync } from 'node:fs';
import { createServer, type Server, type ServerOptions } from 'node:https';
import { insecureHttpReason, TetherError } from '@tether-broker/protocol';
import type { FastifyInstance } from 'fastify';
import type { BrokerConfig } from './config/config.js';

/**
 * Refuses a non-loopback `publicUrl` over plain http unless `allowInsecureHttp` says it is
 * meant (TLS terminated by a proxy that forwards to us over http still has an https public URL).
 */
export function assertSecureTransport(config: Pick<BrokerConfig, 'publicUrl' | 'allowInsecureHttp'>): void {
  if (config.allowInsecureHttp) return;
  const reason = insecureHttpReason(config.publicUrl);
  if (reason === undefined) return;
  throw new TetherError(
    'invalid_request',
    `refusing to start: public URL ${reason}. Serve HTTPS (--tls-cert/--tls-key, TETHER_TLS_CERT/TETHER_TLS_KEY) ` +
      'or give an https public URL of the TLS proxy in front; to run over plain http anyway, ' +
      'set allowInsecureHttp (--allow-insecure-http, TETHER_ALLOW_INSECURE_HTTP=1)',
  );
}

function readPem(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    // The path and the errno only: never the file's content.
    throw new TetherError(
      'invalid_request',
      `cannot read ${setting} ${path}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
}

/** The HTTPS server options from `tlsCert`/`tlsKey`/`tlsClientCa`, or undefined for plain HTTP. */
export function tlsServerOptions(
  config: Pick<BrokerConfig, 'tlsCert' | 'tlsKey' | 'tlsClientCa'>,
): ServerOptions | undefined {
  if (config.tlsCert === undefined || config.tlsKey === undefined) return undefined;
  const options: ServerOptions = {
    cert: readPem('tlsCert', config.tlsCert),
    key: readPem('tlsKey', config.tlsKey),
    minVersion: 'TLSv1.2',
  };
  if (config.tlsClientCa !== undefined) {
    // Mutual TLS: the handshake itself refuses a client without a certificate from this CA.
    options.ca = readPem('tlsClientCa', config.tlsClientCa);
    options.requestCert = true;
    options.rejectUnauthorized = true;
  }
  return options;
}

/** A listening HTTPS server that hands every request to `app`, and its `https://` address. */
export interface TlsListener {
  server: Server;
  url: string;
  /** Stops accepting; resolves when every connection is gone (call `app.close()` meanwhile). */
  close(): Promise<void>;
}

/**
 * Serves `app` over HTTPS. Fastify's HTTP server is built in `buildApp`; this one routes into
 * the same app (`app.routing`) and takes over the limits Fastify set on its own server, so
 * timeouts and header caps hold the same with or without TLS.
 */
export async function listenTls(
  app: FastifyInstance,
  options: ServerOptions,
  host: string,
  port: number,
): Promise<TlsListener> {
  const server = createServer(options, (req, res) => app.routing(req, res));
  const own = app.server;
  server.requestTimeout = own.requestTimeout;
  server.headersTimeout = own.headersTimeout;
  server.keepAliveTimeout = own.keepAliveTimeout;
  server.maxHeadersCount = own.maxHeadersCount;
  server.maxRequestsPerSocket = own.maxRequestsPerSocket;
  server.timeout = own.timeout;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the HTTPS listener has no address');
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `https://${shown}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
