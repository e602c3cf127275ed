import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { ConfigError } from "../errors.js";
import {
  type AppendListeners,
  createAppendListeners,
  createListeners,
  type ListenerErrorOption,
  type Listeners,
} from "./append-listeners.js";
import {
  type AppendItem,
  type AppendListener,
  type AppendResult,
  DEFAULT_MAX_REMEMBERED_DELIVERIES,
  type LatestRead,
  type LogInfo,
  type MailboxRead,
  type MailboxStore,
  type MarkReadResult,
  type ReadListener,
  type ReadMark,
  type ReadState,
  type StoreStats,
  type StreamPosition,
} from "./mailbox-store.js";
import { appendCall, type CallOutcome, ConflictRollback, conflictOutcome, toMessage } from "./sqlite-append.js";
import { markReadOn, readStateOn } from "./sqlite-reads.js";
import { SqliteRetention } from "./sqlite-retention.js";
import { migrate } from "./sqlite-schema.js";
import { type MailboxRow, prepareStatements, type Statements } from "./sqlite-statements.js";
import { orUnavailable, storeClosed, storeUnavailable } from "./store-unavailable.js";

export interface SqliteStoreOptions extends ListenerErrorOption {
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

/** Append calls committed in one transaction at most; the rest go in the next one. */
const MAX_CALLS_PER_COMMIT = 2000;
const DEFAULT_SWEEP_INTERVAL_MS = 1000;
/** Append calls waiting for the next commit at most; beyond it appends fail fast (publishers see 503). */
const MAX_QUEUED_APPENDS = 50_000;

/** Opening the database failed in a way its operator must fix (another Herald holds it): exits 2, one line. */
export class SqliteStoreError extends ConfigError {
  override name = "SqliteStoreError";
}

interface PendingAppend {
  readonly items: readonly AppendItem[];
  readonly resolve: (results: AppendResult[]) => void;
  readonly reject: (error: unknown) => void;
}

export class SqliteStore implements MailboxStore {
  readonly #options: SqliteStoreOptions;
  readonly #now: () => number;
  readonly #db: Database.Database;
  readonly #sql: Statements;
  readonly #listeners: AppendListeners;
  readonly #readListeners: Listeners<Parameters<ReadListener>>;
  readonly #retention: SqliteRetention;
  #queue: PendingAppend[] = [];
  #flushScheduled = false;
  #stats: StoreStats;
  #commits = 0;
  #closed = false;

  constructor(options: SqliteStoreOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#listeners = createAppendListeners(options.onListenerError);
    this.#readListeners = createListeners(options.onListenerError);
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
    this.#retention = new SqliteRetention(this.#db, this.#sql, {
      maxMessagesPerMailbox: options.maxMessagesPerMailbox,
      maxBytes: options.maxBytes,
      sweepIntervalMs: options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS,
      now: this.#now,
      stats: () => this.#stats,
      removed: (messages, bytes) => {
        this.#stats = {
          mailboxes: this.#stats.mailboxes,
          messages: this.#stats.messages - messages,
          bytes: this.#stats.bytes - bytes,
        };
      },
    });
  }

  append(items: readonly AppendItem[]): Promise<AppendResult[]> {
    if (this.#closed) return Promise.reject(storeClosed());
    if (this.#queue.length >= MAX_QUEUED_APPENDS) {
      return Promise.reject(storeUnavailable("Too many publishes are waiting for the disk; retry shortly"));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ items, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  read(mailbox: string, after: StreamPosition, limit: number): Promise<MailboxRead> {
    return this.#attempt(() => {
      const log = this.#sql.mailbox.get(mailbox);
      if (!log) return { log: undefined, messages: [] };
      const afterSeq = after.epoch === log.epoch && after.seq <= log.last_seq ? after.seq : 0;
      const rows = this.#sql.after.all(log.id, afterSeq, this.#now(), limit);
      return { log: this.#info(log), messages: rows.map((row) => toMessage(mailbox, log.epoch, row)) };
    });
  }

  latest(mailbox: string, maxKeys: number): Promise<LatestRead> {
    return this.#attempt(() => {
      const log = this.#sql.mailbox.get(mailbox);
      if (!log) return { log: undefined, messages: [] };
      const rows = this.#sql.latest.all(log.id, this.#now(), maxKeys).reverse();
      return { log: this.#info(log), messages: rows.map((row) => toMessage(mailbox, log.epoch, row)) };
    });
  }

  head(mailbox: string): Promise<LogInfo | undefined> {
    return this.#attempt(() => {
      const log = this.#sql.mailbox.get(mailbox);
      return log && this.#info(log);
    });
  }

  rememberDelivery(key: string, answer: string, ttlMs: number): Promise<void> {
    return this.#attempt(() => {
      const max = this.#options.maxDeliveries ?? DEFAULT_MAX_REMEMBERED_DELIVERIES;
      this.#db.transaction(() => {
        const { lastInsertRowid } = this.#sql.rememberDelivery.run(key, answer, this.#now() + ttlMs);
        // The newest row has the highest pos, so at most `max` rows lie above this line.
        this.#sql.forgetDeliveriesThrough.run(Number(lastInsertRowid) - max);
      })();
    });
  }

  recallDelivery(key: string): Promise<string | undefined> {
    return this.#attempt(() => this.#sql.recallDelivery.get(key, this.#now())?.answer);
  }

  watch(listener: AppendListener): () => void {
    return this.#listeners.add(listener);
  }

  async markRead(mailbox: string, reader: string, mark: ReadMark): Promise<MarkReadResult> {
    const result = await this.#attempt(() => markReadOn(this.#sql, mailbox, reader, mark, this.#now()));
    if (result.status === "moved") this.#readListeners.emit(mailbox, reader, result.state);
    return result;
  }

  readState(mailbox: string, reader: string): Promise<ReadState> {
    return this.#attempt(() => readStateOn(this.#sql, mailbox, reader, this.#now()));
  }

  watchReads(listener: ReadListener): () => void {
    return this.#readListeners.add(listener);
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

  /**
   * The open database, for the schedule store (sqlite-schedule.ts), which keeps its tables in the same
   * file: one Herald holds a data directory, so a second connection could not open it.
   */
  get database(): Database.Database {
    return this.#db;
  }

  /** Commits appends already accepted, then closes the database. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#queue.length > 0) this.#flush();
    this.#retention.stop();
    this.#db.close();
  }

  /** Work on the open database; a closed or failing one is store_unavailable. */
  #attempt<T>(work: () => T): Promise<T> {
    return orUnavailable(() => {
      if (this.#closed) throw storeClosed();
      return work();
    });
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
    const call = this.#db.transaction((items: readonly AppendItem[]) => appendCall(this.#sql, items, now));
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
      const unavailable = storeUnavailable(undefined, error);
      for (const pending of batch) pending.reject(unavailable);
      return;
    }
    this.#commits += 1;
    for (let i = 0; i < batch.length; i++) {
      const outcome = outcomes[i] as CallOutcome;
      this.#stats = {
        mailboxes: this.#stats.mailboxes + outcome.newMailboxes,
        messages: this.#stats.messages + outcome.messages,
        bytes: this.#stats.bytes + outcome.bytes,
      };
      this.#retention.committed(outcome.lastSeqs);
      for (const [mailbox, messages] of outcome.appended) this.#listeners.emit(mailbox, messages);
      (batch[i] as PendingAppend).resolve(outcome.results);
    }
  }
}

export function createSqliteStore(options: SqliteStoreOptions): SqliteStore {
  return new SqliteStore(options);
}
