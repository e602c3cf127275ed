import { nanoid } from "nanoid";
import type { StoredMessage } from "./mailbox-store.js";

/** Bytes a message costs beyond its JSON: object, array slot, id strings. */
const MESSAGE_OVERHEAD_BYTES = 160;

export interface IdempotencyEntry {
  readonly seq: number;
  readonly fingerprint: string | undefined;
}

/** One lifetime of a mailbox's log in the memory store. */
export interface MailboxLog {
  readonly name: string;
  readonly epoch: string;
  lastSeq: number;
  trimmedThrough: number;
  /** Retained messages in seq order; expired ones may linger until the next sweep. */
  messages: StoredMessage[];
  bytes: number;
  idempotency: Map<string, IdempotencyEntry>;
  idempotencyKeyBySeq: Map<number, string>;
  /** Each message key's newest message. */
  readonly latest: LatestValues;
}

export function createMailboxLog(name: string): MailboxLog {
  return {
    name,
    epoch: nanoid(10),
    lastSeq: 0,
    trimmedThrough: 0,
    messages: [],
    bytes: 0,
    idempotency: new Map(),
    idempotencyKeyBySeq: new Map(),
    latest: new LatestValues(),
  };
}

export function messageBytes(message: StoredMessage): number {
  return message.json.length + MESSAGE_OVERHEAD_BYTES;
}

/**
 * Message key -> the newest message with that key, kept on append and dropped
 * with the message (trimmed, swept after expiry, or the whole log evicted).
 * An older message of the key never takes its place (see LatestRead). Keys are
 * re-inserted on every append, so the map's order is its values' seq order.
 */
export class LatestValues {
  readonly #byKey = new Map<string, StoredMessage>();
  /** Seq of each value -> its key, so that a message leaving the log finds its entry. */
  readonly #messageKeyBySeq = new Map<number, string>();

  /** `message`, just appended with `key`, is now that key's value. */
  set(key: string, message: StoredMessage): void {
    const previous = this.#byKey.get(key);
    if (previous) {
      this.#byKey.delete(key);
      this.#messageKeyBySeq.delete(previous.seq);
    }
    this.#byKey.set(key, message);
    this.#messageKeyBySeq.set(message.seq, key);
  }

  /** `message` left the log; when it was its key's value, the key has none now. */
  drop(message: StoredMessage): void {
    const key = this.#messageKeyBySeq.get(message.seq);
    if (key === undefined) return;
    this.#messageKeyBySeq.delete(message.seq);
    this.#byKey.delete(key);
  }

  /** The unexpired values of the `maxKeys` most recently published keys that have one, in seq order. */
  newest(maxKeys: number, now: number): StoredMessage[] {
    const values = [...this.#byKey.values()];
    const picked: StoredMessage[] = [];
    for (let i = values.length - 1; i >= 0 && picked.length < maxKeys; i--) {
      const message = values[i] as StoredMessage;
      if (message.expiresAtMs > now) picked.push(message);
    }
    return picked.reverse();
  }
}
