import type { MessageDraft, StoredMessage } from "./stored-message.js";

export type { MessageDraft, StoredMessage } from "./stored-message.js";

/** The state of one lifetime of a mailbox's log. */
export interface LogInfo {
  /** Names this lifetime. A recreated mailbox (eviction, restart of a volatile store) gets a new one. */
  readonly epoch: string;
  /** The highest seq ever assigned in this epoch; 0 when nothing was appended yet. */
  readonly lastSeq: number;
  /**
   * The highest seq removed by the message cap or the byte budget (not by TTL).
   * Lets the core tell a client *why* it missed messages ("trimmed" or "expired").
   */
  readonly trimmedThrough: number;
}

/**
 * Where a reader is in one mailbox's log: the epoch it read in and the last
 * seq it holds (0: none yet). The one position shape, from the store's reads
 * to the cursor a client carries.
 */
export interface StreamPosition {
  readonly epoch: string;
  readonly seq: number;
}

export interface MailboxRead {
  /** Undefined when the mailbox does not exist; nothing is created by reading. */
  readonly log: LogInfo | undefined;
  /**
   * Unexpired messages in seq order, at most `limit`. They follow
   * `after.seq` when `after.epoch` is the log's epoch and `after.seq <=
   * lastSeq`; otherwise they start at the earliest retained message.
   * `log` and `messages` are one consistent snapshot.
   */
  readonly messages: readonly StoredMessage[];
}

/**
 * The current value of every key of a mailbox: for each message `key`, the
 * newest retained message that carries it, when that message has not expired.
 *
 * - A key's value is its newest message only. When that message expired while
 *   an older one of the same key is still retained, the key is absent: its
 *   newest value is gone and the older one was superseded, so a snapshot never
 *   shows a value older than one a subscriber was already given. Trimming (the
 *   cap, the byte budget) removes a mailbox's oldest messages first, so it
 *   takes a key only together with every older message of it.
 * - Messages without a key are not in it.
 * - `messages` are in seq order, at most `maxKeys` of them: when there are
 *   more keys, those whose newest messages are the most recent are kept.
 * - `log` is the same snapshot (undefined, with no messages, when the mailbox
 *   does not exist): every message has `seq <= log.lastSeq`, and a subscriber
 *   continuing from seq `log.lastSeq` of `log.epoch` gets exactly the messages
 *   appended after the snapshot, none missed and none twice.
 */
export interface LatestRead {
  readonly log: LogInfo | undefined;
  readonly messages: readonly StoredMessage[];
}

export interface AppendItem {
  readonly mailbox: string;
  readonly draft: MessageDraft;
}

export type AppendResult =
  | { readonly status: "stored"; readonly message: StoredMessage }
  /** The idempotency key was seen with the same fingerprint; `message` is the original. */
  | { readonly status: "duplicate"; readonly message: StoredMessage }
  /** The idempotency key was seen with another fingerprint; nothing was stored. */
  | { readonly status: "conflict"; readonly message: StoredMessage };

/**
 * Called after messages were committed, in seq order per mailbox. `messages`
 * may be undefined when the backend only knows that the mailbox moved (a
 * wake-up from another node); the listener then re-reads from the store.
 */
export type AppendListener = (mailbox: string, messages: readonly StoredMessage[] | undefined) => void;

/**
 * Remembered deliveries kept at most by a backend that counts them (memory,
 * SQLite); the oldest remembered are forgotten first beyond it.
 */
export const DEFAULT_MAX_REMEMBERED_DELIVERIES = 100_000;

/** Unread counts stop here: a reader this far behind sees "10,000", and the count stays cheap. */
export const MAX_UNREAD_COUNTED = 10_000;

/** Read positions the memory store keeps; the least recently used is forgotten beyond it. */
export const DEFAULT_MAX_READ_POSITIONS = 100_000;

/** What one reader has read of one mailbox. */
export interface ReadState {
  /**
   * The read position in the log's current epoch: seq 0 when the reader read
   * nothing of it (never marked, or marked in an earlier epoch). Epoch "" when
   * the mailbox does not exist.
   */
  readonly position: StreamPosition;
  /** Retained, unexpired messages after the position, counted up to MAX_UNREAD_COUNTED. */
  readonly unread: number;
  /** The log's last seq when `unread` was counted; later messages are not in it. */
  readonly lastSeq: number;
}

/** Where a reader says it has read to: `seq` of `epoch` (the current epoch when absent). */
export interface ReadMark {
  readonly epoch?: string;
  readonly seq: number;
}

export type MarkReadResult =
  /** The position moved forward; every node's read listeners hear of it. */
  | { readonly status: "moved"; readonly state: ReadState }
  /** The mark was not ahead of the held position, or named an earlier epoch: nothing changed. */
  | { readonly status: "unchanged"; readonly state: ReadState }
  /** The mark names a seq the log has not reached; nothing changed. */
  | { readonly status: "past-head"; readonly lastSeq: number };

/** Told that `reader`'s position in `mailbox` moved, on this node or another. */
export type ReadListener = (mailbox: string, reader: string, state: ReadState) => void;

export interface StoreStats {
  readonly mailboxes: number;
  readonly messages: number;
  readonly bytes: number;
}

/**
 * MailboxStore keeps every mailbox's ordered, retained log. Backends implement
 * it; the core never knows which one it talks to. The shared contract suite
 * (test/store-contract.ts) runs against every backend.
 *
 * A backend that cannot answer (closed, unreachable, failing underneath)
 * rejects with the catalogue's HeraldError `store_unavailable` and
 * `Retry-After: 1` (see store-unavailable.ts), its own error as the `cause`;
 * it rejects with nothing else.
 */
export interface MailboxStore {
  /**
   * Appends each item to its mailbox, creating the mailbox (with a fresh epoch)
   * when it does not exist. Seqs are assigned consecutively per mailbox in item
   * order, starting at 1 in a new epoch. Resolves only once the items are as
   * durable as the backend promises. When any item is a conflict, nothing of
   * the call is stored. An item whose idempotency key matches a retained
   * message is not stored again. Results are in item order.
   */
  append(items: readonly AppendItem[]): Promise<AppendResult[]>;

  /** Reads retained messages of one mailbox; see MailboxRead for the rules. */
  read(mailbox: string, after: StreamPosition, limit: number): Promise<MailboxRead>;

  /**
   * The newest message of each key, at most `maxKeys` (>= 1), with the log
   * state it was taken at; see LatestRead for the rules. Costs about the
   * number of keys the mailbox holds, not its number of messages; nothing is
   * created by asking.
   */
  latest(mailbox: string, maxKeys: number): Promise<LatestRead>;

  /** The current log state of a mailbox, or undefined when it does not exist. */
  head(mailbox: string): Promise<LogInfo | undefined>;

  /**
   * Registers a listener for committed appends (including other nodes' ones).
   * Returns an unsubscribe function. A listener that throws does not fail the
   * append nor keep the other listeners from hearing of it; its error goes to
   * the backend's `onListenerError` (see append-listeners.ts).
   */
  watch(listener: AppendListener): () => void;

  /**
   * Remembers `answer` under `key` for `ttlMs` (> 0), replacing what the key
   * held and its expiry. Webhook ingest keeps here what it answered each
   * delivery, so a retry or a replay is recognised after the message left
   * retention, across a restart where the backend is durable, and on every
   * node sharing it. Keys are opaque strings of any characters. Memory and
   * SQLite keep at most their configured number (default
   * DEFAULT_MAX_REMEMBERED_DELIVERIES), forgetting the oldest remembered
   * first; Redis bounds them by expiry and its own memory limit. Resolves once
   * as durable as an append. Rejects after close.
   */
  rememberDelivery(key: string, answer: string, ttlMs: number): Promise<void>;

  /** The answer last remembered under `key`, or undefined when it expired, was forgotten or never was. */
  recallDelivery(key: string): Promise<string | undefined>;

  /**
   * Moves `reader`'s read position in `mailbox` forward to `mark`, atomically
   * with the check against the log's head: a mark of an earlier epoch, or not
   * ahead of the held position, changes nothing; one past the last seq is
   * refused. A mailbox that does not exist takes only seq 0. Positions are kept
   * as the backend keeps messages (across restarts on SQLite, shared by every
   * node on Redis); the memory store keeps the most recently used
   * DEFAULT_MAX_READ_POSITIONS unless configured otherwise.
   */
  markRead(mailbox: string, reader: string, mark: ReadMark): Promise<MarkReadResult>;

  /** `reader`'s read state in `mailbox`; a reader that never marked has position seq 0. */
  readState(mailbox: string, reader: string): Promise<ReadState>;

  /** Registers a listener for moved read positions, of every node sharing the backend. Returns an unsubscribe function. */
  watchReads(listener: ReadListener): () => void;

  /** True while the backend can accept appends. */
  ready(): boolean;

  stats(): StoreStats;

  /** Releases timers and connections. Appends after close reject. */
  close(): Promise<void>;
}
