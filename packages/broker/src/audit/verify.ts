import { type AuditRecord, GENESIS_HASH, hashRecord } from './chain.js';

export type ChainFault =
  | 'edited' // the record's content no longer matches its hash
  | 'broken_link' // prev_hash does not name the record before it (deleted, inserted or reordered)
  | 'sequence_gap' // a sequence number is missing (deleted)
  | 'sequence_duplicate' // a sequence number appears twice (inserted)
  | 'truncated'; // records after the last one are gone (the head says the chain is longer)

export interface ChainVerification {
  ok: boolean;
  checked: number;
  /** The first bad record, in chain order. */
  firstBad?: { seq: number; id: string; fault: ChainFault; message: string };
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

  constructor(head: { seq: number; hash: string } | undefined) {
    this.#head = head;
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
    if (hashRecord(unsigned) !== hash) {
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
    return undefined;
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
    return this.#fault
      ? { ok: false, checked: this.#checked, firstBad: this.#fault }
      : { ok: true, checked: this.#checked };
  }
}
