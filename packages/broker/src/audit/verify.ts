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
 */
export class ChainVerifier {
  #expectedSeq = 1;
  #prevHash = GENESIS_HASH;
  #checked = 0;
  #fault: ChainVerification['firstBad'];

  /** Feeds the next records (ordered by seq). Returns false once a fault is found. */
  feed(records: readonly AuditRecord[]): boolean {
    for (const record of records) {
      if (this.#fault) return false;
      this.#fault = this.#check(record);
      if (this.#fault) return false;
      this.#checked += 1;
      this.#expectedSeq = record.seq + 1;
      this.#prevHash = record.hash;
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
    return undefined;
  }

  /** Final verdict, given the head the store keeps (the last seq and hash it wrote). */
  finish(head: { seq: number; hash: string } | undefined): ChainVerification {
    if (!this.#fault && head && (head.seq !== this.#expectedSeq - 1 || head.hash !== this.#prevHash)) {
      if (head.seq >= this.#expectedSeq) {
        this.#fault = {
          seq: this.#expectedSeq,
          id: '',
          fault: 'truncated',
          message: `records ${this.#expectedSeq}..${head.seq} are missing at the end of the chain`,
        };
      } else {
        this.#fault = {
          seq: head.seq,
          id: '',
          fault: 'broken_link',
          message: `the chain does not end at the head the store recorded (seq ${head.seq})`,
        };
      }
    }
    return this.#fault
      ? { ok: false, checked: this.#checked, firstBad: this.#fault }
      : { ok: true, checked: this.#checked };
  }
}
