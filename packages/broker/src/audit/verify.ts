import { type KeyObject, timingSafeEqual } from 'node:crypto';
import { type AuditRecord, GENESIS_HASH, hashRecord, KEYED, macRecord, UNKEYED } from './chain.js';

export type ChainFault =
  | 'edited' // the record's content no longer matches its hash
  | 'broken_link' // prev_hash does not name the record before it (deleted, inserted or reordered)
  | 'sequence_gap' // a sequence number is missing (deleted)
  | 'sequence_duplicate' // a sequence number appears twice (inserted)
  | 'truncated' // records after the last one are gone (the head or a checkpoint says the chain is longer)
  | 'unkeyed' // a record without a MAC where the chain is keyed (rewritten with the old algorithm)
  | 'checkpoint_mismatch' // the record at a checkpoint's position is not the one checkpointed
  | 'checkpoint_forged' // a checkpoint whose tag does not verify under the checkpoint key
  | 'recording_edited' // a stored recording chunk no longer has the hash its audit record states
  | 'recording_missing' // a recording chunk the audit chain records is gone from the store
  | 'recording_unrecorded'; // a stored recording chunk the audit chain has no record of

export interface ChainVerification {
  ok: boolean;
  checked: number;
  /** The first bad record, in chain order. */
  firstBad?: { seq: number; id: string; fault: ChainFault; message: string };
}

/** What a chain is checked against, besides itself. */
export interface ChainTrust {
  /** The chain key: a keyed record must carry a valid MAC under it (none: no keyed record verifies). */
  key: KeyObject | undefined;
  /**
   * Unkeyed records are accepted up to this position only: the prefix written before the chain
   * was keyed, sealed by the broker with a checkpoint when it keyed it. 0: no unkeyed record.
   */
  unkeyedUntil: number;
  /** Authentic checkpoints (tags already verified): the record at each `seq` must have `hash`. */
  checkpoints: readonly { seq: number; hash: string }[];
}

/** Compares two hex MACs in constant time. */
function sameMac(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Walks a chain in sequence order and reports the first record that does not fit. A pure
 * state machine over pages of records, so that a chain of any length is verified in bounded
 * memory.
 *
 * `head` is what the store recorded as the chain's end (the last seq and hash the broker
 * wrote), read in the same snapshot as the records: it is what tells a truncated chain from
 * a complete one, and a record slipped in after the end from a real one.
 */
export class ChainVerifier {
  readonly #head: { seq: number; hash: string } | undefined;
  #expectedSeq = 1;
  #prevHash = GENESIS_HASH;
  #lastId = '';
  #checked = 0;
  #fault: ChainVerification['firstBad'];
  readonly #trust: ChainTrust;
  readonly #checkpoints: Map<number, string>;

  constructor(head: { seq: number; hash: string } | undefined, trust: ChainTrust) {
    this.#head = head;
    this.#trust = trust;
    this.#checkpoints = new Map(trust.checkpoints.map((c) => [c.seq, c.hash]));
  }

  /** Feeds the next records (ordered by seq). Returns false once a fault is found. */
  feed(records: readonly AuditRecord[]): boolean {
    for (const record of records) {
      if (this.#fault) return false;
      this.#fault = this.#check(record);
      if (this.#fault) return false;
      this.#checked += 1;
      this.#expectedSeq = record.seq + 1;
      this.#prevHash = record.hash;
      this.#lastId = record.id;
    }
    return this.#fault === undefined;
  }

  #check(record: AuditRecord): ChainVerification['firstBad'] {
    const at = { seq: record.seq, id: record.id };
    if (record.seq < this.#expectedSeq) {
      return { ...at, fault: 'sequence_duplicate', message: `sequence ${record.seq} appears more than once` };
    }
    if (record.seq > this.#expectedSeq) {
      return {
        ...at,
        fault: 'sequence_gap',
        message: `records ${this.#expectedSeq}..${record.seq - 1} are missing before record ${record.seq}`,
      };
    }
    const { hash, ...unsigned } = record;
    if (record.macVersion === UNKEYED && record.seq > this.#trust.unkeyedUntil) {
      return {
        ...at,
        fault: 'unkeyed',
        message: `record ${record.seq} carries no MAC, but the chain is keyed there (rewritten without the key)`,
      };
    }
    const key = this.#trust.key;
    const authentic =
      record.macVersion === KEYED
        ? key !== undefined && sameMac(macRecord(unsigned, key), hash)
        : record.macVersion === UNKEYED && hashRecord(unsigned) === hash;
    if (!authentic) {
      return { ...at, fault: 'edited', message: `record ${record.seq} was modified after it was written` };
    }
    if (record.prevHash !== this.#prevHash) {
      return {
        ...at,
        fault: 'broken_link',
        message: `record ${record.seq} does not follow the record before it (inserted, deleted or reordered)`,
      };
    }
    if (this.#head && record.seq > this.#head.seq) {
      return {
        ...at,
        fault: 'broken_link',
        message: `record ${record.seq} lies past the end of the chain the store recorded (seq ${this.#head.seq})`,
      };
    }
    const checkpointed = this.#checkpoints.get(record.seq);
    if (checkpointed !== undefined && checkpointed !== record.hash) {
      return {
        ...at,
        fault: 'checkpoint_mismatch',
        message: `record ${record.seq} is not the record checkpointed there: the chain up to it was rewritten`,
      };
    }
    return undefined;
  }

  /** The last record that passed every check so far, if any. */
  lastVerified(): { seq: number; hash: string } | undefined {
    return this.#checked > 0 ? { seq: this.#expectedSeq - 1, hash: this.#prevHash } : undefined;
  }

  /** Final verdict: the records fed so far must end exactly at the head. */
  finish(): ChainVerification {
    const head = this.#head;
    if (!this.#fault && !head) {
      this.#fault = {
        seq: this.#expectedSeq,
        id: '',
        fault: 'truncated',
        message: "the store's record of the chain's end is missing, so records may be missing at the end",
      };
    } else if (!this.#fault && head && head.seq >= this.#expectedSeq) {
      this.#fault = {
        seq: this.#expectedSeq,
        id: '',
        fault: 'truncated',
        message: `records ${this.#expectedSeq}..${head.seq} are missing at the end of the chain`,
      };
    } else if (!this.#fault && head && head.hash !== this.#prevHash) {
      // Same length as the head says, but the last record is not the one the broker wrote.
      this.#fault = {
        seq: head.seq,
        id: this.#lastId,
        fault: 'broken_link',
        message: `record ${head.seq} is not the record the store recorded as the end of the chain`,
      };
    }
    const beyond = this.#trust.checkpoints.reduce((max, c) => Math.max(max, c.seq), 0);
    if (!this.#fault && beyond >= this.#expectedSeq) {
      // The head can be moved back by whoever deletes the tail; a checkpoint cannot be forged.
      this.#fault = {
        seq: this.#expectedSeq,
        id: '',
        fault: 'truncated',
        message: `records ${this.#expectedSeq}..${beyond} are missing at the end of the chain (a checkpoint saw record ${beyond})`,
      };
    }
    return this.#fault
      ? { ok: false, checked: this.#checked, firstBad: this.#fault }
      : { ok: true, checked: this.#checked };
  }
}
