import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback for fault injection: it forwards to a real server (this machine's
 * PostgreSQL) and can hang every connection (`pause`), cut them (`cut`, like a reset or a
 * failover), or refuse new ones (`refuse`), then heal (`resume`, `allow`).
 */
export class TcpProxy {
  readonly #server: Server;
  readonly #pairs = new Set<[Socket, Socket]>();
  #paused = false;
  #port = 0;

  private constructor(private readonly target: { host: string; port: number }) {
    this.#server = createServer((client) => this.#accept(client));
  }

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    await proxy.#listen(0);
    return proxy;
  }

  get port(): number {
    return this.#port;
  }

  /** Connections open through the proxy now. */
  get connections(): number {
    return this.#pairs.size;
  }

  #accept(client: Socket): void {
    const upstream = connect(this.target.port, this.target.host);
    const pair: [Socket, Socket] = [client, upstream];
    this.#pairs.add(pair);
    const drop = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
    if (this.#paused) this.#pauseOne(pair);
  }

  #pauseOne([client, upstream]: [Socket, Socket]): void {
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
  }

  /** Every connection, open or new, stops carrying bytes: a hung database. */
  pause(): void {
    this.#paused = true;
    for (const pair of this.#pairs) this.#pauseOne(pair);
  }

  resume(): void {
    this.#paused = false;
    for (const [client, upstream] of this.#pairs) {
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      upstream.resume();
    }
  }

  /** Resets every open connection. */
  cut(): void {
    for (const [client, upstream] of [...this.#pairs]) {
      client.resetAndDestroy();
      upstream.destroy();
    }
  }

  /** Stops listening (new connections are refused) and cuts the open ones. */
  async refuse(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.cut();
    });
  }

  /** Listens again on the same port. */
  async allow(): Promise<void> {
    await this.#listen(this.#port);
  }

  async close(): Promise<void> {
    this.cut();
    if (this.#server.listening) await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        const address = this.#server.address();
        if (address && typeof address === 'object') this.#port = address.port;
        resolve();
      });
    });
  }
}
