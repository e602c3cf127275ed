import type { StoredMessage } from "../store/mailbox-store.js";
import type { PushTarget } from "../store/push-subscription-store.js";
import { type PushContent, pushBody, type pushFields } from "./push-payload.js";

/** A message's fields as pushing reads them. */
export type PushFields = NonNullable<ReturnType<typeof pushFields>>;

/** One message to every subscription of its mailbox: one queue entry, however many browsers. */
interface Batch {
  readonly message: StoredMessage;
  readonly fields: PushFields;
  readonly subscriptions: readonly PushTarget[];
  next: number;
  /** Made when the first of its pushes is sent, then shared by all. */
  body?: Omit<PushContent, "ttlSeconds">;
}

/** One push; a retry waits and queues as one of its own. */
export interface PushJob {
  readonly subscription: PushTarget;
  readonly message: StoredMessage;
  readonly fields: PushFields;
  readonly attempt: number;
  readonly withoutData: boolean;
  readonly body?: Omit<PushContent, "ttlSeconds">;
}

/** The dispatcher's FIFO of pushes, each message's batch in arrival order, retries behind them. */
export class PushQueue {
  readonly #entries: (Batch | PushJob)[] = [];
  #head = 0;
  /** Pushes in the queue (a batch counts each subscription it has left). */
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** One message to these subscriptions. */
  addBatch(message: StoredMessage, fields: PushFields, subscriptions: readonly PushTarget[]): void {
    this.#entries.push({ message, fields, subscriptions, next: 0 });
    this.#size += subscriptions.length;
  }

  /** One push (a retry, or a 413 resent without data). */
  add(job: PushJob): void {
    this.#entries.push(job);
    this.#size += 1;
  }

  /** The next push in the queue, or undefined. */
  take(): PushJob | undefined {
    const entry = this.#entries[this.#head];
    if (entry === undefined) return undefined;
    let job: PushJob;
    if ("subscriptions" in entry) {
      entry.body ??= pushBody(entry.message, entry.fields, false);
      const subscription = entry.subscriptions[entry.next] as PushTarget;
      entry.next += 1;
      job = {
        subscription,
        message: entry.message,
        fields: entry.fields,
        attempt: 1,
        withoutData: false,
        body: entry.body,
      };
      if (entry.next < entry.subscriptions.length) {
        this.#size -= 1;
        return job;
      }
    } else {
      job = entry;
    }
    this.#size -= 1;
    this.#entries[this.#head] = undefined as unknown as PushJob;
    this.#head += 1;
    if (this.#head === this.#entries.length) {
      this.#entries.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries.splice(0, this.#head);
      this.#head = 0;
    }
    return job;
  }

  /** Empties the queue; answers how many pushes it held. */
  clear(): number {
    const size = this.#size;
    this.#entries.length = 0;
    this.#head = 0;
    this.#size = 0;
    return size;
  }
}
