import type { LRUCache } from "lru-cache";
import { getOrCreate } from "../util/get-or-create.js";
import { growingLru } from "../util/growing-lru.js";
import { type AppendListeners, createAppendListeners, type ListenerErrorOption } from "./append-listeners.js";
import {
  type AppendItem,
  type AppendListener,
  type AppendResult,
  DEFAULT_MAX_READ_POSITIONS,
  DEFAULT_MAX_REMEMBERED_DELIVERIES,
  type LatestRead,
  type LogInfo,
  type MailboxRead,
  type MailboxStore,
  type MarkReadResult,
  type ReadListener,
  type ReadMark,
  type ReadState,
  type StoredMessage,
  type StoreStats,
  type StreamPosition,
} from "./mailbox-store.js";
import { MemoryDeliveries } from "./memory-deliveries.js";
import { createMailboxLog, type IdempotencyEntry, type MailboxLog, messageBytes } from "./memory-log.js";
import { indexAfter, MemoryReadPositions } from "./memory-read-positions.js";
import { storeClosed } from "./store-unavailable.js";
import { draftKey, storedMessage } from "./stored-message.js";

export interface MemoryStoreOptions extends ListenerErrorOption {
  /** Mailboxes kept at once; the least recently used is evicted beyond it. */
  readonly maxMailboxes: number;
  /** Messages kept per mailbox; the oldest are trimmed beyond it. */
  readonly maxMessagesPerMailbox: number;
  /** Bytes of message JSON kept over all mailboxes. */
  readonly maxBytes: number;
  /** Remembered deliveries kept; the oldest remembered is forgotten beyond it. */
  readonly maxDeliveries?: number;
  /** Read positions kept; the least recently used is forgotten beyond it. */
  readonly maxReadPositions?: number;
  /** How often expired messages are swept out (they are never served once expired). */
  readonly sweepIntervalMs?: number;
  readonly now?: () => number;
}

/** Upper bound on messages examined per sweep tick, so a sweep never stalls the loop. */
const MAX_SWEEP_MESSAGES_PER_TICK = 50_000;

export class MemoryStore implements MailboxStore {
  readonly #options: MemoryStoreOptions;
  readonly #now: () => number;
  readonly #logs: LRUCache<string, MailboxLog>;
  readonly #deliveries: MemoryDeliveries;
  readonly #listeners: AppendListeners;
  readonly #readPositions: MemoryReadPositions;
  readonly #sweepTimer: NodeJS.Timeout;
  #bytes = 0;
  #messageCount = 0;
  #sweepQueue: string[] = [];
  #closed = false;

  constructor(options: MemoryStoreOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#listeners = createAppendListeners(options.onListenerError);
    this.#readPositions = new MemoryReadPositions(
      options.maxReadPositions ?? DEFAULT_MAX_READ_POSITIONS,
      this.#now,
      options.onListenerError,
    );
    this.#logs = growingLru<string, MailboxLog>(options.maxMailboxes, { dispose: (log) => this.#forget(log) });
    this.#deliveries = new MemoryDeliveries(options.maxDeliveries ?? DEFAULT_MAX_REMEMBERED_DELIVERIES, this.#now);
    this.#sweepTimer = setInterval(() => this.sweepExpired(), options.sweepIntervalMs ?? 10_000);
    this.#sweepTimer.unref();
  }

  async append(items: readonly AppendItem[]): Promise<AppendResult[]> {
    if (this.#closed) throw storeClosed();
    const now = this.#now();
    const results: (AppendResult | undefined)[] = new Array(items.length);
    // First pass: idempotency, so a conflict stores nothing of the call.
    for (let i = 0; i < items.length; i++) {
      const { mailbox, draft } = items[i] as AppendItem;
      if (draft.idempotencyKey === undefined) continue;
      const log = this.#logs.peek(mailbox);
      const original = log && this.#retainedByKey(log, draft.idempotencyKey, now);
      if (!original) continue;
      const entry = log.idempotency.get(draft.idempotencyKey) as IdempotencyEntry;
      if (entry.fingerprint !== draft.fingerprint) {
        return [{ status: "conflict", message: original }];
      }
      results[i] = { status: "duplicate", message: original };
    }
    const appended = new Map<string, StoredMessage[]>();
    for (let i = 0; i < items.length; i++) {
      if (results[i]) continue;
      const { mailbox, draft } = items[i] as AppendItem;
      const log = this.#logFor(mailbox);
      if (draft.idempotencyKey !== undefined) {
        // Two items of one call may share a key: the second repeats the first.
        const earlier = this.#retainedByKey(log, draft.idempotencyKey, now);
        if (earlier) {
          results[i] = { status: "duplicate", message: earlier };
          continue;
        }
      }
      log.lastSeq += 1;
      const message = storedMessage(mailbox, log.epoch, log.lastSeq, draft);
      log.messages.push(message);
      const key = draftKey(draft);
      if (key !== undefined) log.latest.set(key, message);
      const size = messageBytes(message);
      log.bytes += size;
      this.#bytes += size;
      this.#messageCount += 1;
      if (draft.idempotencyKey !== undefined) {
        log.idempotency.set(draft.idempotencyKey, { seq: message.seq, fingerprint: draft.fingerprint });
        log.idempotencyKeyBySeq.set(message.seq, draft.idempotencyKey);
      }
      results[i] = { status: "stored", message };
      const list = getOrCreate(appended, mailbox, () => []);
      list.push(message);
      this.#trimToCap(log);
    }
    for (const mailbox of appended.keys()) this.#enforceByteBudget(mailbox, appended);
    for (const [mailbox, messages] of appended) this.#listeners.emit(mailbox, messages);
    return results as AppendResult[];
  }

  async read(mailbox: string, after: StreamPosition, limit: number): Promise<MailboxRead> {
    const log = this.#logs.get(mailbox);
    if (!log) return { log: undefined, messages: [] };
    const afterSeq = after.epoch === log.epoch && after.seq <= log.lastSeq ? after.seq : 0;
    const now = this.#now();
    const messages: StoredMessage[] = [];
    const all = log.messages;
    for (let i = indexAfter(all, afterSeq); i < all.length && messages.length < limit; i++) {
      const message = all[i] as StoredMessage;
      if (message.expiresAtMs > now) messages.push(message);
    }
    return { log: this.#info(log), messages };
  }

  async latest(mailbox: string, maxKeys: number): Promise<LatestRead> {
    const log = this.#logs.get(mailbox);
    if (!log) return { log: undefined, messages: [] };
    return { log: this.#info(log), messages: log.latest.newest(maxKeys, this.#now()) };
  }

  async head(mailbox: string): Promise<LogInfo | undefined> {
    const log = this.#logs.peek(mailbox);
    return log && this.#info(log);
  }

  async rememberDelivery(key: string, answer: string, ttlMs: number): Promise<void> {
    if (this.#closed) throw storeClosed();
    this.#deliveries.remember(key, answer, ttlMs);
  }

  async recallDelivery(key: string): Promise<string | undefined> {
    if (this.#closed) throw storeClosed();
    return this.#deliveries.recall(key);
  }

  watch(listener: AppendListener): () => void {
    return this.#listeners.add(listener);
  }

  async markRead(mailbox: string, reader: string, mark: ReadMark): Promise<MarkReadResult> {
    if (this.#closed) throw storeClosed();
    return this.#readPositions.mark(mailbox, reader, this.#logs.peek(mailbox), mark);
  }

  async readState(mailbox: string, reader: string): Promise<ReadState> {
    if (this.#closed) throw storeClosed();
    return this.#readPositions.state(mailbox, reader, this.#logs.peek(mailbox));
  }

  watchReads(listener: ReadListener): () => void {
    return this.#readPositions.watch(listener);
  }

  ready(): boolean {
    return !this.#closed;
  }

  stats(): StoreStats {
    return { mailboxes: this.#logs.size, messages: this.#messageCount, bytes: this.#bytes };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweepTimer);
  }

  /** Removes expired messages; exposed so tests and shutdown paths can force it. */
  sweepExpired(): void {
    const now = this.#now();
    let examined = 0;
    // Resumes where the last tick stopped, so every mailbox is swept however many there are.
    if (this.#sweepQueue.length === 0) this.#sweepQueue = [...this.#logs.keys()];
    while (this.#sweepQueue.length > 0 && examined <= MAX_SWEEP_MESSAGES_PER_TICK) {
      const log = this.#logs.peek(this.#sweepQueue.pop() as string);
      if (!log) continue;
      examined += log.messages.length;
      if (!log.messages.some((message) => message.expiresAtMs <= now)) continue;
      const kept: StoredMessage[] = [];
      for (const message of log.messages) {
        if (message.expiresAtMs > now) kept.push(message);
        else this.#drop(log, message);
      }
      log.messages = kept;
    }
  }

  #info(log: MailboxLog): LogInfo {
    return { epoch: log.epoch, lastSeq: log.lastSeq, trimmedThrough: log.trimmedThrough };
  }

  #logFor(mailbox: string): MailboxLog {
    let log = this.#logs.get(mailbox);
    if (!log) {
      log = createMailboxLog(mailbox);
      this.#logs.set(mailbox, log);
    }
    return log;
  }

  #retainedByKey(log: MailboxLog, key: string, now: number): StoredMessage | undefined {
    const entry = log.idempotency.get(key);
    if (!entry) return undefined;
    const index = indexAfter(log.messages, entry.seq - 1);
    const message = log.messages[index];
    if (!message || message.seq !== entry.seq || message.expiresAtMs <= now) return undefined;
    return message;
  }

  #trimToCap(log: MailboxLog): void {
    const excess = log.messages.length - this.#options.maxMessagesPerMailbox;
    if (excess > 0) this.#trimOldest(log, excess);
  }

  #trimOldest(log: MailboxLog, count: number): void {
    const removed = log.messages.splice(0, count);
    for (const message of removed) this.#drop(log, message);
    const last = removed[removed.length - 1];
    if (last) log.trimmedThrough = Math.max(log.trimmedThrough, last.seq);
  }

  #drop(log: MailboxLog, message: StoredMessage): void {
    const size = messageBytes(message);
    log.bytes -= size;
    this.#bytes -= size;
    this.#messageCount -= 1;
    log.latest.drop(message);
    const key = log.idempotencyKeyBySeq.get(message.seq);
    if (key !== undefined) {
      log.idempotencyKeyBySeq.delete(message.seq);
      // The key may already belong to a newer message, stored after this one expired.
      if (log.idempotency.get(key)?.seq === message.seq) log.idempotency.delete(key);
    }
  }

  /** Evicts least recently used mailboxes, then trims the current one, until within budget. */
  #enforceByteBudget(current: string, pinned: ReadonlyMap<string, unknown>): void {
    // Mailboxes this call appended to are never evicted by it: their publishers get their cursors.
    while (this.#bytes > this.#options.maxBytes && this.#logs.size > 1) {
      const oldest = this.#logs.rkeys().next().value as string;
      if (oldest === current || pinned.has(oldest)) break;
      this.#logs.delete(oldest);
    }
    const log = this.#logs.peek(current);
    while (log && this.#bytes > this.#options.maxBytes && log.messages.length > 1) {
      this.#trimOldest(log, 1);
    }
  }

  #forget(log: MailboxLog): void {
    this.#bytes -= log.bytes;
    this.#messageCount -= log.messages.length;
  }
}

export function createMemoryStore(options: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
