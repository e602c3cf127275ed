import type { LRUCache } from "lru-cache";
import { growingLru } from "../util/growing-lru.js";
import { createListeners, type ListenerErrorHandler, type Listeners } from "./append-listeners.js";
import {
  type LogInfo,
  MAX_UNREAD_COUNTED,
  type MarkReadResult,
  type ReadListener,
  type ReadMark,
  type ReadState,
  type StoredMessage,
  type StreamPosition,
} from "./mailbox-store.js";
import { decideMark, effectivePosition } from "./read-marks.js";

/** A mailbox's log as far as read state needs it: its head and its retained messages in seq order. */
export interface RetainedLog extends LogInfo {
  readonly messages: readonly StoredMessage[];
}

/** Index of the first message with seq > afterSeq. */
export function indexAfter(messages: readonly StoredMessage[], afterSeq: number): number {
  let low = 0;
  let high = messages.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((messages[mid] as StoredMessage).seq <= afterSeq) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** The memory store's read positions: the most recently used `max`, forgotten beyond it. */
export class MemoryReadPositions {
  readonly #positions: LRUCache<string, StreamPosition>;
  readonly #listeners: Listeners<Parameters<ReadListener>>;
  readonly #now: () => number;

  constructor(max: number, now: () => number, onListenerError?: ListenerErrorHandler) {
    // Keyed by mailbox and reader joined by a newline, which no mailbox name holds.
    this.#positions = growingLru(max);
    this.#listeners = createListeners(onListenerError);
    this.#now = now;
  }

  mark(mailbox: string, reader: string, log: RetainedLog | undefined, mark: ReadMark): MarkReadResult {
    const key = `${mailbox}\n${reader}`;
    const decision = decideMark(log, this.#positions.get(key), mark);
    if (decision.kind === "past-head") return { status: "past-head", lastSeq: log?.lastSeq ?? 0 };
    if (decision.kind === "moved") this.#positions.set(key, decision.position);
    const state = this.#stateAt(log, decision.position);
    if (decision.kind === "moved") this.#listeners.emit(mailbox, reader, state);
    return { status: decision.kind, state };
  }

  state(mailbox: string, reader: string, log: RetainedLog | undefined): ReadState {
    return this.#stateAt(log, effectivePosition(log, this.#positions.get(`${mailbox}\n${reader}`)));
  }

  watch(listener: ReadListener): () => void {
    return this.#listeners.add(listener);
  }

  #stateAt(log: RetainedLog | undefined, position: StreamPosition): ReadState {
    if (!log) return { position, unread: 0, lastSeq: 0 };
    const now = this.#now();
    let unread = 0;
    const all = log.messages;
    for (let i = indexAfter(all, position.seq); i < all.length && unread < MAX_UNREAD_COUNTED; i++) {
      if ((all[i] as StoredMessage).expiresAtMs > now) unread += 1;
    }
    return { position, unread, lastSeq: log.lastSeq };
  }
}
