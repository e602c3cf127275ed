import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { nanoid } from "nanoid";
import {
  type AppendItem,
  type AppendListener,
  type AppendResult,
  DEFAULT_MAX_REMEMBERED_DELIVERIES,
  type LogInfo,
  type MailboxRead,
  type MailboxStore,
  type StoredMessage,
  type StoreStats,
  type StreamPosition,
} from "./mailbox-store.js";
import { migrate } from "./sqlite-schema.js";
import { type MailboxRow, type MessageRow, prepareStatements, type Statements } from "./sqlite-statements.js";
import { storedMessage } from "./stored-message.js";

export interface SqliteStoreOptions {
  /** Directory holding the database file; created when missing. */
  readonly dataDir: string;
  /**
   * "full" fsyncs the WAL on every commit: an acknowledged publish survives a
   * power loss. "normal" fsyncs only at checkpoints: it survives a crash of
   * Herald, but an OS crash or power loss may roll back the last commits.
   */
  readonly sync: "full" | "normal";
  /** Messages kept per mailbox; older ones are trimmed in the background. */
  readonly maxMessagesPerMailbox: number;
  /** Bytes of messages kept over all mailboxes; the oldest are trimmed in the background. */
  readonly maxBytes: number;
  /** Remembered deliveries kept; the oldest remembered are deleted beyond it. */
  readonly maxDeliveries?: number;
  /** How often expired messages are deleted (they are never served once expired). */
  readonly sweepIntervalMs?: number;
  readonly now?: () => number;
}

export const SQLITE_FILE_NAME = "herald.sqlite";

/** Bytes a row costs beyond its JSON: ids, integers, index entries. */
const MESSAGE_OVERHEAD_BYTES = 96;
/** Append calls committed in one transaction at most; the rest go in the next one. */
const MAX_CALLS_PER_COMMIT = 2000;
/** Rows one background trim step may delete, so a step never stalls publishes for long. */
const TRIM_BATCH_ROWS = 2000;
/** Pause before a trim step, letting commits that arrive meanwhile be trimmed together. */
const TRIM_DELAY_MS = 10;
/** Mailboxes checked against the cap per step when scanning the whole store after opening. */
const CAP_SCAN_MAILBOXES = 500;
const DEFAULT_SWEEP_INTERVAL_MS = 1000;
/** Append calls waiting for the next commit at most; beyond it appends fail fast (publishers see 503). */
const MAX_QUEUED_APPENDS = 50_000;

export class SqliteStoreError extends Error {
  override name = "SqliteStoreError";
}

interface PendingAppend {
  readonly items: readonly AppendItem[];
  readonly resolve: (results: AppendResult[]) => void;
  readonly reject: (error: unknown) => void;
}

/** What one committed append call changed; applied to in-memory state only after the commit. */
interface CallOutcome {
  readonly results: AppendResult[];
  readonly appended: Map<string, StoredMessage[]>;
  readonly lastSeqs: Map<number, number>;
  newMailboxes: number;
  messages: number;
  bytes: number;
}

/** Thrown inside a call's savepoint so that a conflict rolls back everything of that call. */
class ConflictRollback extends Error {
  constructor(readonly original: StoredMessage) {
    super("idempotency conflict");
  }
}

function toMessage(mailbox: string, epoch: string, row: MessageRow): StoredMessage {
  return {
    mailbox,
    epoch,
    seq: row.seq,
    id: row.id,
    timeMs: row.time_ms,
    expiresAtMs: row.expires_at_ms,
    json: row.json,
  };
}

export class SqliteStore implements MailboxStore {
  readonly #options: SqliteStoreOptions;
  readonly #now: () => number;
  readonly #db: Database.Database;
  readonly #sql: Statements;
  readonly #listeners = new Set<AppendListener>();
  readonly #sweepTimer: NodeJS.Timeout;
  #queue: PendingAppend[] = [];
  #flushScheduled = false;
  #trimTimer: NodeJS.Timeout | undefined;
  /** Mailbox id -> last seq, for mailboxes that may hold more than the cap. */
  readonly #capDirty = new Map<number, number>();
  /** Next mailbox id of the after-open cap scan; undefined once done. */
  #capScanAfter: number | undefined = 0;
  #sweepDue = true;
  #stats: StoreStats;
  #commits = 0;
  #closed = false;

  constructor(options: SqliteStoreOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    mkdirSync(options.dataDir, { recursive: true });
    // No busy wait: the only other connection there can be is another Herald, refused below.
    this.#db = new Database(join(options.dataDir, SQLITE_FILE_NAME), { timeout: 0 });
    try {
      // One Herald per data directory: a second one would not see the first one's publishes live.
      this.#db.pragma("locking_mode = EXCLUSIVE");
      this.#db.pragma("journal_mode = WAL");
      this.#db.pragma(`synchronous = ${options.sync === "full" ? "FULL" : "NORMAL"}`);
      migrate(this.#db);
      this.#sql = prepareStatements(this.#db);
    } catch (error) {
      this.#db.close();
      if ((error as { code?: string }).code === "SQLITE_BUSY") {
        throw new SqliteStoreError(`${options.dataDir} is in use by another Herald process`);
      }
      throw error;
    }
    const messages = this.#sql.countMessages.get() as { n: number; bytes: number };
    const mailboxes = (this.#sql.countMailboxes.get() as { n: number }).n;
    this.#stats = { mailboxes, messages: messages.n, bytes: messages.bytes };
    this.#sweepTimer = setInterval(() => {
      this.#sweepDue = true;
      this.#scheduleTrim();
    }, options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS);
    this.#sweepTimer.unref();
    this.#scheduleTrim();
  }

  append(items: readonly AppendItem[]): Promise<AppendResult[]> {
    if (this.#closed) return Promise.reject(new SqliteStoreError("store is closed"));
    if (this.#queue.length >= MAX_QUEUED_APPENDS) {
      return Promise.reject(new SqliteStoreError("too many appends waiting for a commit"));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ items, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  async read(mailbox: string, after: StreamPosition, limit: number): Promise<MailboxRead> {
    const log = this.#sql.mailbox.get(mailbox);
    if (!log) return { log: undefined, messages: [] };
    const afterSeq = after.epoch === log.epoch && after.seq <= log.last_seq ? after.seq : 0;
    const rows = this.#sql.after.all(log.id, afterSeq, this.#now(), limit);
    return { log: this.#info(log), messages: rows.map((row) => toMessage(mailbox, log.epoch, row)) };
  }

  async head(mailbox: string): Promise<LogInfo | undefined> {
    const log = this.#sql.mailbox.get(mailbox);
    return log && this.#info(log);
  }

  async rememberDelivery(key: string, answer: string, ttlMs: number): Promise<void> {
    if (this.#closed) throw new SqliteStoreError("store is closed");
    const max = this.#options.maxDeliveries ?? DEFAULT_MAX_REMEMBERED_DELIVERIES;
    this.#db.transaction(() => {
      const { lastInsertRowid } = this.#sql.rememberDelivery.run(key, answer, this.#now() + ttlMs);
      // The newest row has the highest pos, so at most `max` rows lie above this line.
      this.#sql.forgetDeliveriesThrough.run(Number(lastInsertRowid) - max);
    })();
  }

  async recallDelivery(key: string): Promise<string | undefined> {
    if (this.#closed) throw new SqliteStoreError("store is closed");
    return this.#sql.recallDelivery.get(key, this.#now())?.answer;
  }

  watch(listener: AppendListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  ready(): boolean {
    return !this.#closed;
  }

  stats(): StoreStats {
    return this.#stats;
  }

  /** Transactions that committed appends; with group commit, fewer than append calls. */
  get commits(): number {
    return this.#commits;
  }

  /** Commits appends already accepted, then closes the database. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#queue.length > 0) this.#flush();
    clearInterval(this.#sweepTimer);
    clearTimeout(this.#trimTimer);
    this.#db.close();
  }

  #info(log: MailboxRow): LogInfo {
    return { epoch: log.epoch, lastSeq: log.last_seq, trimmedThrough: log.trimmed_through };
  }

  /** Group commit: every append call queued since the last flush shares one transaction. */
  #flush(): void {
    this.#flushScheduled = false;
    const batch = this.#queue.splice(0, MAX_CALLS_PER_COMMIT);
    if (this.#queue.length > 0 && !this.#closed) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
    if (batch.length === 0 || !this.#db.open) return;
    const now = this.#now();
    const outcomes: CallOutcome[] = [];
    const call = this.#db.transaction((items: readonly AppendItem[]) => this.#appendCall(items, now));
    try {
      this.#db
        .transaction(() => {
          outcomes.length = 0;
          for (const pending of batch) {
            try {
              outcomes.push(call(pending.items));
            } catch (error) {
              if (!(error instanceof ConflictRollback)) throw error;
              outcomes.push(conflictOutcome(error.original));
            }
          }
        })
        .immediate();
    } catch (error) {
      for (const pending of batch) pending.reject(error);
      return;
    }
    this.#commits += 1;
    let listenerError: unknown;
    for (let i = 0; i < batch.length; i++) {
      const outcome = outcomes[i] as CallOutcome;
      this.#stats = {
        mailboxes: this.#stats.mailboxes + outcome.newMailboxes,
        messages: this.#stats.messages + outcome.messages,
        bytes: this.#stats.bytes + outcome.bytes,
      };
      for (const [id, lastSeq] of outcome.lastSeqs) this.#capDirty.set(id, lastSeq);
      for (const [mailbox, messages] of outcome.appended) {
        for (const listener of this.#listeners) {
          // A failing listener must not leave committed publishes unanswered.
          try {
            listener(mailbox, messages);
          } catch (error) {
            listenerError ??= error;
          }
        }
      }
      (batch[i] as PendingAppend).resolve(outcome.results);
    }
    if (listenerError !== undefined) process.emitWarning(listenerError as Error);
    if (this.#stats.bytes > this.#options.maxBytes || this.#capDirty.size > 0) this.#scheduleTrim();
  }

  /** One append call, inside its own savepoint: all of it or, on a conflict, none of it. */
  #appendCall(items: readonly AppendItem[], now: number): CallOutcome {
    const outcome: CallOutcome = {
      results: [],
      appended: new Map(),
      lastSeqs: new Map(),
      newMailboxes: 0,
      messages: 0,
      bytes: 0,
    };
    const logs = new Map<string, MailboxRow>();
    for (const { mailbox, draft } of items) {
      let log = logs.get(mailbox) ?? this.#sql.mailbox.get(mailbox);
      if (!log) {
        const epoch = nanoid(10);
        const { id } = this.#sql.createMailbox.get(mailbox, epoch) as { id: number };
        log = { id, epoch, last_seq: 0, trimmed_through: 0 };
        outcome.newMailboxes += 1;
      }
      logs.set(mailbox, log);
      const key = draft.idempotencyKey;
      if (key !== undefined) {
        const row = this.#sql.byKey.get(log.id, key, now);
        if (row) {
          const original = toMessage(mailbox, log.epoch, row);
          if ((row.fingerprint ?? undefined) !== draft.fingerprint) throw new ConflictRollback(original);
          outcome.results.push({ status: "duplicate", message: original });
          continue;
        }
      }
      log.last_seq += 1;
      const message = storedMessage(mailbox, log.epoch, log.last_seq, draft);
      const size = message.json.length + (key?.length ?? 0) + MESSAGE_OVERHEAD_BYTES;
      this.#sql.insert.run(
        log.id,
        message.seq,
        message.id,
        message.timeMs,
        message.expiresAtMs,
        message.json,
        size,
        key ?? null,
        draft.fingerprint ?? null,
      );
      outcome.messages += 1;
      outcome.bytes += size;
      outcome.results.push({ status: "stored", message });
      const list = outcome.appended.get(mailbox);
      if (list) list.push(message);
      else outcome.appended.set(mailbox, [message]);
      outcome.lastSeqs.set(log.id, log.last_seq);
    }
    for (const [id, lastSeq] of outcome.lastSeqs) this.#sql.setLastSeq.run(lastSeq, id);
    return outcome;
  }

  #scheduleTrim(): void {
    if (this.#trimTimer || this.#closed) return;
    this.#trimTimer = setTimeout(() => this.#trimStep(), TRIM_DELAY_MS);
    this.#trimTimer.unref();
  }

  /** One bounded step of retention: cap, byte budget, then expiry. Reschedules itself while work remains. */
  #trimStep(): void {
    this.#trimTimer = undefined;
    if (this.#closed) return;
    const cap = this.#options.maxMessagesPerMailbox;
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
      let excess = this.#stats.bytes - removedBytes - this.#options.maxBytes;
      let left = this.#stats.messages - removed;
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
        const now = this.#now();
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
    this.#stats = {
      mailboxes: this.#stats.mailboxes,
      messages: this.#stats.messages - removed,
      bytes: this.#stats.bytes - removedBytes,
    };
    for (const id of done) this.#capDirty.delete(id);
    if (sweepFinished) this.#sweepDue = false;
    if (more || this.#capDirty.size > 0 || this.#capScanAfter !== undefined || this.#sweepDue) this.#scheduleTrim();
  }

  /** After opening, every mailbox is checked against the cap once (the cap may have changed). */
  #scanForCap(): void {
    const rows = this.#sql.scanMailboxes.all(this.#capScanAfter ?? 0, CAP_SCAN_MAILBOXES);
    for (const row of rows) this.#capDirty.set(row.id, row.last_seq);
    this.#capScanAfter = rows.length < CAP_SCAN_MAILBOXES ? undefined : rows.at(-1)?.id;
  }
}

function conflictOutcome(original: StoredMessage): CallOutcome {
  return {
    results: [{ status: "conflict", message: original }],
    appended: new Map(),
    lastSeqs: new Map(),
    newMailboxes: 0,
    messages: 0,
    bytes: 0,
  };
}

export function createSqliteStore(options: SqliteStoreOptions): SqliteStore {
  return new SqliteStore(options);
}
