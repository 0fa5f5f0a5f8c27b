import { createHash } from 'node:crypto';
import { TetherError } from '@tether-broker/protocol';
import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { recordAuditInEveryTenant } from '../audit/record.js';
import { type Kek, sealSecret } from '../config/key-encryption.js';
import type { Clock } from '../domain/clock.js';
import { inTransaction, type StoreHandle } from '../store/database.js';
import type { SigningKeyRow } from '../store/schema.js';
import {
  bindingOf,
  type OpenedKey,
  openSigningKey,
  type RejectionReason,
  SEAL_BOUND,
  SigningKeyRejected,
} from './signing-key-seal.js';

export {
  openSigningKey,
  type RejectionReason,
  SEAL_BOUND,
  SEAL_LEGACY,
  SigningKeyRejected,
} from './signing-key-seal.js';

export const SIGNING_ALG = 'EdDSA';

/** How long a replaced key keeps verifying: at least the longest access-token lifetime. */
export const DEFAULT_ROTATION_OVERLAP_SECONDS = 3600;

export interface ActiveSigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** A fresh Ed25519 key pair, its private half sealed under the KEK bound to its kid. */
export async function newSealedKey(kek: Kek, now: number): Promise<SigningKeyRow> {
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return {
    kid,
    alg: SIGNING_ALG,
    public_jwk: JSON.stringify({ ...publicJwk, kid, alg: SIGNING_ALG, use: 'sig' }),
    private_jwk_enc: await sealSecret(kek, JSON.stringify(await exportJWK(privateKey)), bindingOf(kid, kid)),
    state: 'active',
    created_at: now,
    retire_at: null,
    seal_version: SEAL_BOUND,
  };
}

/** A signing-key change, in every tenant's audit chain (keys are broker-wide). */
export function keyEvent(
  action: string,
  kid: string,
  outcome: 'success' | 'refused',
  details: Record<string, unknown>,
) {
  return { actor: 'broker', action, target: kid, outcome, details } as const;
}

/**
 * The broker's signing keys, opened once and kept in memory. The newest usable active key
 * signs; usable active keys and retiring keys still inside their overlap verify and are
 * published in the JWKS; nothing else is. A key is usable only when {@link openSigningKey}
 * accepts its row: a row a database writer inserted or altered is neither published nor
 * trusted, and is reported (error log, `tether_signing_key_rejected_total`, an audit record).
 * `load()` again picks up a rotation (replicas do it on every sweep).
 */
export class SigningKeys {
  #signer: ActiveSigningKey | undefined;
  #publicJwks: JWK[] = [];
  #verifiers = new Map<string, { key: CryptoKey; retireAt: number | null }>();
  /** Rows already opened, by their content: a row that changes is checked again. */
  #opened = new Map<string, OpenedKey>();
  /** Rows already reported as rejected (by content), so a sweep does not repeat the report. */
  #reported = new Set<string>();
  #rejections = new Map<RejectionReason, number>();

  constructor(
    private readonly store: StoreHandle,
    private readonly kek: Kek,
    private readonly clock: Clock,
    private readonly logger?: Logger,
  ) {}

  async load(): Promise<void> {
    const rows = await this.store.db
      .selectFrom('signing_keys')
      .selectAll()
      .where('state', 'in', ['active', 'retiring'])
      .orderBy('created_at', 'desc')
      .execute();
    const usable: { row: SigningKeyRow; key: OpenedKey }[] = [];
    const opened = new Map<string, OpenedKey>();
    for (const row of rows) {
      const content = rowContent(row);
      let key = this.#opened.get(content);
      if (!key) {
        try {
          key = await openSigningKey(this.kek, row);
        } catch (err) {
          if (!(err instanceof SigningKeyRejected)) throw err;
          await this.#reject(row, content, err.reason);
          continue;
        }
      }
      opened.set(content, key);
      usable.push({ row, key });
    }
    this.#opened = opened;
    const newest = usable.find((u) => u.row.state === 'active');
    if (!newest)
      throw new TetherError(
        'store_unavailable',
        'the store has no usable signing key; run `tether init` first (or `tether keys rotate` if its keys were rejected)',
      );
    if (newest.row.kid !== this.#signer?.kid)
      this.#signer = {
        kid: newest.row.kid,
        privateKey: newest.key.privateKey,
        publicJwk: newest.key.publicJwk,
      };
    this.#verifiers = new Map(
      usable.map(({ row, key }) => [
        row.kid,
        { key: key.publicKey, retireAt: row.state === 'retiring' ? row.retire_at : null },
      ]),
    );
    this.#publicJwks = usable.map(({ key }) => key.publicJwk);
  }

  async #reject(row: SigningKeyRow, content: string, reason: RejectionReason): Promise<void> {
    if (this.#reported.has(content)) return;
    this.#reported.add(content);
    this.#rejections.set(reason, (this.#rejections.get(reason) ?? 0) + 1);
    // The kid is whatever the row says: bounded, never trusted as more than a label.
    const kid = row.kid.slice(0, 100);
    this.logger?.error(
      { kid, reason, state: row.state },
      'SIGNING KEY REJECTED: a signing_keys row does not hold together (inserted or altered in the database?); it is neither published nor trusted',
    );
    try {
      await inTransaction(this.store, (tx) =>
        recordAuditInEveryTenant(
          tx,
          this.clock.now(),
          keyEvent('signing_key.rejected', kid, 'refused', { reason }),
        ),
      );
    } catch (err) {
      this.logger?.error({ err, kid }, 'could not record a rejected signing key in the audit chains');
    }
  }

  /** How many distinct rows were rejected since start, by reason. */
  rejections(): ReadonlyMap<RejectionReason, number> {
    return this.#rejections;
  }

  signer(): ActiveSigningKey {
    if (!this.#signer) throw new Error('signing keys not loaded');
    return this.#signer;
  }

  #inService(kid: string): boolean {
    const entry = this.#verifiers.get(kid);
    return entry !== undefined && (entry.retireAt === null || this.clock.now() < entry.retireAt);
  }

  /** The public keys in service, as published at /.well-known/jwks.json. */
  jwks(): { keys: JWK[] } {
    return {
      keys: this.#publicJwks
        .filter((k) => k.kid !== undefined && this.#inService(k.kid))
        .map((k) => ({ ...k })),
    };
  }

  /** The key that verifies `kid`, if it is still in service (a retired key verifies nothing). */
  verificationKey(kid: string): CryptoKey | undefined {
    return this.#inService(kid) ? this.#verifiers.get(kid)?.key : undefined;
  }
}

function rowContent(row: SigningKeyRow): string {
  return createHash('sha256')
    .update([row.kid, row.alg, row.public_jwk, row.private_jwk_enc, String(row.seal_version)].join('\u0000'))
    .digest('hex');
}

/** Exposes `tether_signing_key_rejected_total{reason}` in the app's metrics registry. */
export function exposeSigningKeyMetrics(registry: Registry, keys: SigningKeys): void {
  new Counter({
    name: 'tether_signing_key_rejected_total',
    help: 'signing_keys rows refused since start (neither published nor trusted), by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of keys.rejections()) this.inc({ reason }, n);
    },
  });
}
