import type Database from "better-sqlite3";
import type { StoreStats } from "./mailbox-store.js";
import type { Statements } from "./sqlite-statements.js";

/** Rows one background trim step may delete, so a step never stalls publishes for long. */
const TRIM_BATCH_ROWS = 2000;
/** Pause before a trim step, letting commits that arrive meanwhile be trimmed together. */
const TRIM_DELAY_MS = 10;
/** Mailboxes checked against the cap per step when scanning the whole store after opening. */
const CAP_SCAN_MAILBOXES = 500;

export interface RetentionSettings {
  readonly maxMessagesPerMailbox: number;
  readonly maxBytes: number;
  readonly sweepIntervalMs: number;
  readonly now: () => number;
  /** The store's counts as they are now. */
  readonly stats: () => StoreStats;
  /** Called after a step committed, with what it deleted. */
  readonly removed: (messages: number, bytes: number) => void;
}

/**
 * The SQLite store's retention, in bounded background steps: the per-mailbox
 * cap, the byte budget, then expired messages and remembered deliveries.
 */
export class SqliteRetention {
  readonly #db: Database.Database;
  readonly #sql: Statements;
  readonly #settings: RetentionSettings;
  readonly #sweepTimer: NodeJS.Timeout;
  #stepTimer: NodeJS.Timeout | undefined;
  /** Mailbox id -> last seq, for mailboxes that may hold more than the cap. */
  readonly #capDirty = new Map<number, number>();
  /** Next mailbox id of the after-open cap scan; undefined once done. */
  #capScanAfter: number | undefined = 0;
  #sweepDue = true;
  #stopped = false;

  constructor(db: Database.Database, sql: Statements, settings: RetentionSettings) {
    this.#db = db;
    this.#sql = sql;
    this.#settings = settings;
    this.#sweepTimer = setInterval(() => {
      this.#sweepDue = true;
      this.#schedule();
    }, settings.sweepIntervalMs);
    this.#sweepTimer.unref();
    this.#schedule();
  }

  /** After a commit: these mailboxes (id -> last seq) may now hold more than the cap. */
  committed(lastSeqs: ReadonlyMap<number, number>): void {
    for (const [id, lastSeq] of lastSeqs) this.#capDirty.set(id, lastSeq);
    if (this.#settings.stats().bytes > this.#settings.maxBytes || this.#capDirty.size > 0) this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#sweepTimer);
    clearTimeout(this.#stepTimer);
  }

  #schedule(): void {
    if (this.#stepTimer || this.#stopped) return;
    this.#stepTimer = setTimeout(() => this.#step(), TRIM_DELAY_MS);
    this.#stepTimer.unref();
  }

  /** One bounded step: cap, byte budget, then expiry. Reschedules itself while work remains. */
  #step(): void {
    this.#stepTimer = undefined;
    if (this.#stopped) return;
    const cap = this.#settings.maxMessagesPerMailbox;
    const stats = this.#settings.stats();
    let budget = TRIM_BATCH_ROWS;
    let removed = 0;
    let removedBytes = 0;
    let more = false;
    const done: number[] = [];
    const trimmed = new Map<number, number>();
    let sweepFinished = false;
    const step = this.#db.transaction(() => {
      if (this.#capDirty.size === 0 && this.#capScanAfter !== undefined) this.#scanForCap();
      for (const [id, lastSeq] of this.#capDirty) {
        if (budget <= 0) break;
        const rows = this.#sql.trimToCap.all(id, lastSeq - cap, budget);
        if (rows.length < budget) done.push(id);
        budget -= rows.length;
        for (const row of rows) {
          removed += 1;
          removedBytes += row.size;
          trimmed.set(id, Math.max(trimmed.get(id) ?? 0, row.seq));
        }
      }
      let excess = stats.bytes - removedBytes - this.#settings.maxBytes;
      let left = stats.messages - removed;
      if (excess > 0 && budget > 0) {
        let through: number | undefined;
        for (const row of this.#sql.oldest.all(budget)) {
          // The newest message always stays, however large.
          if (excess <= 0 || left <= 1) break;
          excess -= row.size;
          left -= 1;
          removed += 1;
          removedBytes += row.size;
          budget -= 1;
          through = row.pos;
          trimmed.set(row.mailbox_id, Math.max(trimmed.get(row.mailbox_id) ?? 0, row.seq));
        }
        if (through !== undefined) this.#sql.deleteThrough.run(through);
        if (excess > 0 && left > 1) more = true;
      }
      if (this.#sweepDue && budget > 0) {
        const now = this.#settings.now();
        const rows = this.#sql.deleteExpired.all(now, budget);
        for (const row of rows) {
          removed += 1;
          removedBytes += row.size;
        }
        const forgotten = this.#sql.deleteExpiredDeliveries.run(now, TRIM_BATCH_ROWS).changes;
        sweepFinished = rows.length < budget && forgotten < TRIM_BATCH_ROWS;
      }
      for (const [id, seq] of trimmed) this.#sql.raiseTrimmed.run(seq, id);
    });
    try {
      step.immediate();
    } catch {
      // A busy or failing disk: retention waits for the next commit or sweep to try again.
      return;
    }
    this.#settings.removed(removed, removedBytes);
    for (const id of done) this.#capDirty.delete(id);
    if (sweepFinished) this.#sweepDue = false;
    if (more || this.#capDirty.size > 0 || this.#capScanAfter !== undefined || this.#sweepDue) this.#schedule();
  }

  /** After opening, every mailbox is checked against the cap once (the cap may have changed). */
  #scanForCap(): void {
    const rows = this.#sql.scanMailboxes.all(this.#capScanAfter ?? 0, CAP_SCAN_MAILBOXES);
    for (const row of rows) this.#capDirty.set(row.id, row.last_seq);
    this.#capScanAfter = rows.length < CAP_SCAN_MAILBOXES ? undefined : rows.at(-1)?.id;
  }
}
