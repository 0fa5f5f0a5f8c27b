// A broker process on a durable SQLite file that the scale benchmark can stop, seed and start
// again on the same file (same data directory, key-encryption key and address).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Child, freePort } from './processes.mjs';

const BROKER_SCRIPT = new URL('./broker-process.mjs', import.meta.url);

export class ScaleBroker {
  #child;

  constructor(name) {
    this.name = name;
    this.dataDir = mkdtempSync(join(tmpdir(), 'tether-bench-scale-'));
    this.file = join(this.dataDir, 'tether.db');
    this.kek = randomBytes(32).toString('base64url');
  }

  /** Starts the broker; the first start migrates the file and bootstraps the tenant. */
  async start() {
    this.port ??= await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    const first = this.tenant === undefined;
    this.#child = new Child(BROKER_SCRIPT, `broker ${this.name}`);
    this.#child.send({
      type: 'start',
      location: this.file,
      port: this.port,
      publicUrl: this.url,
      dataDir: this.dataDir,
      kek: this.kek,
      bootstrap: first,
    });
    const started = await this.#child.expect('started', { timeoutMs: 180_000 });
    if (first) {
      this.tenant = started.tenant;
      this.adminIdentity = {
        broker: this.url,
        tenant: started.tenant,
        principal: started.admin.principal,
        key: started.admin.key,
      };
    }
    // As BenchTenant expects of startBrokers().
    return { urls: [this.url], publicUrl: this.url, tenant: this.tenant, adminIdentity: this.adminIdentity };
  }

  async stop() {
    await this.#child?.stop();
    this.#child = undefined;
  }

  async dispose() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
