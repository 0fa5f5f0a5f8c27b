// A TCP proxy on loopback for fault injection: it forwards to a real server (this machine's
// PostgreSQL, or a broker) and can hang every connection (`pause`), cut them (`cut`, like a
// reset or a failover), or refuse new ones (`refuse`), then heal (`resume`, `allow`).
import { connect, createServer } from 'node:net';

export class TcpProxy {
  #server;
  #pairs = new Set();
  #paused = false;
  #port = 0;
  #target;

  /** @param {{ host: string, port: number }} target */
  constructor(target) {
    this.#target = target;
    this.#server = createServer((client) => this.#accept(client));
  }

  /** @param {{ host: string, port: number }} target */
  static async start(target) {
    const proxy = new TcpProxy(target);
    await proxy.#listen(0);
    return proxy;
  }

  get port() {
    return this.#port;
  }

  /** Connections open through the proxy now. */
  get connections() {
    return this.#pairs.size;
  }

  #accept(client) {
    const upstream = connect(this.#target.port, this.#target.host);
    const pair = [client, upstream];
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

  #pauseOne([client, upstream]) {
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
  }

  /** Every connection, open or new, stops carrying bytes: a hung peer or a partition. */
  pause() {
    this.#paused = true;
    for (const pair of this.#pairs) this.#pauseOne(pair);
  }

  resume() {
    this.#paused = false;
    for (const [client, upstream] of this.#pairs) {
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      upstream.resume();
    }
  }

  /** Resets every open connection. */
  cut() {
    for (const [client, upstream] of [...this.#pairs]) {
      client.resetAndDestroy();
      upstream.destroy();
    }
  }

  /** Stops listening (new connections are refused) and cuts the open ones. */
  async refuse() {
    await new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.cut();
    });
  }

  /** Listens again on the same port. */
  async allow() {
    await this.#listen(this.#port);
  }

  async close() {
    this.cut();
    if (this.#server.listening) await new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #listen(port) {
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
