import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { StoredMessage } from "../store/mailbox-store.js";
import { getOrCreate } from "../util/get-or-create.js";
import type { RoundFrames, Subscription } from "./subscription.js";

export interface FanoutOptions {
  /** Subscribers written to before the loop yields to the event loop. */
  readonly chunkSize: number;
  /** Messages waiting for fan-out at most; beyond it subscribers catch up from the store instead. */
  readonly maxPending: number;
}

/**
 * The live subscribers of every mailbox, and the rounds that hand them new
 * messages. Every append committed in one turn of the event loop joins one
 * round: one write per subscriber, not one per message. Messages wait in a
 * bounded queue; appends that would overflow it stay in the store only, and
 * the subscribers of their mailbox re-read it after the round, so memory stays
 * bounded and nothing is lost.
 */
export class Fanout {
  readonly #options: FanoutOptions;
  readonly #subscribers = new Map<string, Set<Subscription>>();
  #pending: StoredMessage[] = [];
  readonly #overflowed = new Set<string>();
  #running = false;
  #round = 0;

  constructor(options: FanoutOptions) {
    this.#options = options;
  }

  get subscriberCount(): number {
    let count = 0;
    for (const set of this.#subscribers.values()) count += set.size;
    return count;
  }

  count(mailbox: string): number {
    return this.#subscribers.get(mailbox)?.size ?? 0;
  }

  /** Mailboxes with at least one live subscriber. */
  mailboxes(): IterableIterator<string> {
    return this.#subscribers.keys();
  }

  add(subscription: Subscription): void {
    for (const mailbox of subscription.mailboxes)
      getOrCreate(this.#subscribers, mailbox, () => new Set()).add(subscription);
  }

  remove(subscription: Subscription): void {
    for (const mailbox of subscription.mailboxes) {
      const set = this.#subscribers.get(mailbox);
      if (!set) continue;
      set.delete(subscription);
      if (set.size === 0) this.#subscribers.delete(mailbox);
    }
  }

  /** Every live subscription, for drain; each appears once. */
  all(): Set<Subscription> {
    const all = new Set<Subscription>();
    for (const set of this.#subscribers.values()) for (const subscription of set) all.add(subscription);
    return all;
  }

  /** Committed `messages` of `mailbox`, or undefined when only the store knows what (another node appended). */
  onAppend(mailbox: string, messages: readonly StoredMessage[] | undefined): void {
    const subscribers = this.#subscribers.get(mailbox);
    if (!subscribers) return;
    if (messages === undefined) {
      for (const subscription of subscribers) void subscription.pump();
      return;
    }
    if (this.#pending.length + messages.length > this.#options.maxPending) this.#overflowed.add(mailbox);
    else for (const message of messages) this.#pending.push(message);
    if (this.#running) return;
    this.#running = true;
    setImmediate(() => void this.#run());
  }

  /**
   * Delivers pending messages in commit order, one round per batch. Within a
   * round every subscriber gets all its messages in one write, and the loop
   * yields every chunk so that 10,000 writes do not starve the server.
   */
  async #run(): Promise<void> {
    this.#running = true;
    const { chunkSize } = this.#options;
    try {
      while (this.#pending.length > 0) {
        // Stores report appends per mailbox; publish time restores the order across mailboxes.
        let batch = inDeliveryOrder(this.#pending);
        this.#pending = [];
        const round = ++this.#round;
        let byMailbox = groupByMailbox(batch);
        let frames: RoundFrames = new Map();
        let written = 0;
        let absorbed = 0;
        for (const mailbox of [...byMailbox.keys()]) {
          const subscribers = this.#subscribers.get(mailbox);
          if (!subscribers) continue;
          for (const subscription of subscribers) {
            if (subscription.round === round) continue;
            subscription.round = round;
            const messages = byMailbox.get(mailbox) as StoredMessage[];
            subscription.deliverLive(subscription.mailboxes.length === 1 ? messages : batch, frames);
            if (++written % chunkSize !== 0) continue;
            await yieldToLoop();
            if (this.#pending.length === absorbed) continue;
            // Publishes that landed during the yield ride along with the rest of this round, so a
            // subscriber not yet visited gets one write, not two. They stay pending: the next round
            // offers them again, and the subscribers visited since drop them by seq.
            batch = inDeliveryOrder(batch.concat(this.#pending.slice(absorbed)));
            absorbed = this.#pending.length;
            byMailbox = groupByMailbox(batch);
            frames = new Map();
          }
        }
      }
    } finally {
      this.#running = false;
      for (const mailbox of this.#overflowed) {
        const subscribers = this.#subscribers.get(mailbox);
        if (subscribers) for (const subscription of subscribers) void subscription.pump();
      }
      this.#overflowed.clear();
    }
  }
}

/**
 * Messages ordered by publish time across mailboxes, each mailbox's kept in
 * seq order (as the store reported them). Publish times come from each node's
 * clock and are taken before Redis assigns the seq, so two nodes publishing
 * to one mailbox can stamp seq 3 earlier than seq 2: sorting by time alone
 * would show every subscriber a hole and send each to the store for it.
 */
export function inDeliveryOrder(messages: StoredMessage[]): StoredMessage[] {
  let ordered = true;
  for (let i = 1; i < messages.length && ordered; i++) {
    ordered = (messages[i - 1] as StoredMessage).timeMs <= (messages[i] as StoredMessage).timeMs;
  }
  if (ordered) return messages;
  // A message sorts no earlier than the one before it in its mailbox; the sort is stable, so ties keep seq order.
  const latest = new Map<string, number>();
  const keyed = messages.map((message) => {
    const key = Math.max(message.timeMs, latest.get(message.mailbox) ?? Number.NEGATIVE_INFINITY);
    latest.set(message.mailbox, key);
    return { message, key };
  });
  keyed.sort((x, y) => x.key - y.key);
  return keyed.map((each) => each.message);
}

function groupByMailbox(batch: readonly StoredMessage[]): Map<string, StoredMessage[]> {
  const byMailbox = new Map<string, StoredMessage[]>();
  for (const message of batch) getOrCreate(byMailbox, message.mailbox, () => []).push(message);
  return byMailbox;
}
