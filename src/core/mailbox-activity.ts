import type { LRUCache } from "lru-cache";
import type { MailboxStore, StoredMessage } from "../store/mailbox-store.js";
import { growingLru } from "../util/growing-lru.js";

/** Mailboxes whose publish rate is tracked at most; the least recently published to is forgotten first. */
export const DEFAULT_MAX_TRACKED_MAILBOXES = 10_000;
/** Seconds a publish rate is averaged over. */
export const RATE_WINDOW_SECONDS = 10;

/** One mailbox's appends: a ring of per-second counts over the last RATE_WINDOW_SECONDS. */
interface Tally {
  total: number;
  lastAtMs: number;
  readonly counts: number[];
  /** The second (epoch seconds) each slot of `counts` belongs to. */
  readonly seconds: number[];
}

export interface MailboxRate {
  readonly mailbox: string;
  /** Messages appended since tracking began (or since it was last forgotten). */
  readonly published: number;
  /** Messages per second, averaged over the last RATE_WINDOW_SECONDS. */
  readonly perSecond: number;
  readonly lastAtMs: number;
}

/**
 * How often each mailbox is published to, for the admin console's "busiest
 * mailboxes". It listens to the store's committed appends (every node's, on
 * Redis), so it costs one map update per append, never anything per delivery.
 * Memory is bounded: an LRU of at most `maxMailboxes` tallies.
 */
export class MailboxActivity {
  readonly #tallies: LRUCache<string, Tally>;
  readonly #unwatch: () => void;
  readonly #now: () => number;

  constructor(store: MailboxStore, maxMailboxes = DEFAULT_MAX_TRACKED_MAILBOXES, now: () => number = Date.now) {
    this.#tallies = growingLru<string, Tally>(maxMailboxes);
    this.#now = now;
    this.#unwatch = store.watch((mailbox, messages) => this.#record(mailbox, messages));
  }

  /** Tracked mailboxes, most recently published to first. */
  mailboxes(): IterableIterator<string> {
    return this.#tallies.keys();
  }

  rate(mailbox: string): MailboxRate {
    const tally = this.#tallies.peek(mailbox);
    if (tally === undefined) return { mailbox, published: 0, perSecond: 0, lastAtMs: 0 };
    const second = Math.floor(this.#now() / 1000);
    let recent = 0;
    for (let i = 0; i < RATE_WINDOW_SECONDS; i++) {
      const at = tally.seconds[i] as number;
      if (at > second - RATE_WINDOW_SECONDS && at <= second) recent += tally.counts[i] as number;
    }
    return { mailbox, published: tally.total, perSecond: recent / RATE_WINDOW_SECONDS, lastAtMs: tally.lastAtMs };
  }

  close(): void {
    this.#unwatch();
  }

  #record(mailbox: string, messages: readonly StoredMessage[] | undefined): void {
    // Another node's wake-up says only that the mailbox moved: at least one message.
    const count = messages?.length ?? 1;
    const nowMs = this.#now();
    const second = Math.floor(nowMs / 1000);
    let tally = this.#tallies.get(mailbox);
    if (tally === undefined) {
      tally = {
        total: 0,
        lastAtMs: 0,
        counts: new Array<number>(RATE_WINDOW_SECONDS).fill(0),
        seconds: new Array<number>(RATE_WINDOW_SECONDS).fill(0),
      };
      this.#tallies.set(mailbox, tally);
    }
    const slot = second % RATE_WINDOW_SECONDS;
    if (tally.seconds[slot] !== second) {
      tally.seconds[slot] = second;
      tally.counts[slot] = 0;
    }
    tally.counts[slot] = (tally.counts[slot] as number) + count;
    tally.total += count;
    tally.lastAtMs = nowMs;
  }
}
