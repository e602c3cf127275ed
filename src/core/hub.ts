import { setImmediate as yieldToLoop } from "node:timers/promises";
import { HeraldError } from "../errors.js";
import type { AppendResult, MailboxStore, StoredMessage } from "../store/mailbox-store.js";
import { getOrCreate } from "../util/get-or-create.js";
import { CURSOR_NOW, encodeSingleCursor, parseCursor } from "./cursor.js";
import type { GapNotice, StreamSink } from "./delivery.js";
import { createDraft, type MessageFields } from "./message-input.js";
import { cursorOf, EMPTY_EPOCH, type PositionMap, type ReadEvent, readAfter } from "./read-plan.js";
import { type RoundFrames, Subscription, type SubscriptionContext } from "./subscription.js";
import { createWaiter, type Waiter } from "./waiter.js";

export interface HubOptions {
  readonly store: MailboxStore;
  /** Retention of a message whose publisher gave no ttl. */
  readonly defaultTtlSeconds: number;
  /** Bytes queued for one connection beyond which a live subscriber is cut. */
  readonly maxQueueBytes: number;
  /** Messages read from the store per replay step of a subscriber. */
  readonly replayPageSize?: number;
  /** Subscribers written to before the fan-out loop yields to the event loop. */
  readonly fanoutChunkSize?: number;
  /** Messages waiting for fan-out at most; beyond it subscribers catch up from the store instead. */
  readonly maxPendingFanout?: number;
  /** Seconds a client is told to wait before retrying a publish while draining. */
  readonly retryAfterSeconds?: number;
}

export interface PublishItem {
  readonly mailbox: string;
  readonly fields: MessageFields;
}

export interface Published {
  readonly message: StoredMessage;
  /** True when an Idempotency-Key matched a retained message and nothing was stored. */
  readonly duplicate: boolean;
  /** The single-mailbox cursor just after this message. */
  readonly cursor: string;
}

export interface ReadRequest {
  readonly mailboxes: readonly string[];
  /** As the client sent it: undefined (from the earliest), "now", or a cursor. */
  readonly cursor: string | undefined;
  readonly limit: number;
  /** 0 answers at once; otherwise hold until something arrives or this passes. */
  readonly waitMs: number;
  readonly signal?: AbortSignal;
}

export interface ReadAnswer {
  readonly messages: { readonly message: StoredMessage; readonly cursor: string }[];
  readonly cursor: string;
  readonly gaps: GapNotice[];
}

export interface HubCounters {
  published: number;
  delivered: number;
  gaps: number;
  slowConsumersCut: number;
}

const DEFAULT_REPLAY_PAGE_SIZE = 500;
const DEFAULT_FANOUT_CHUNK_SIZE = 500;
const DEFAULT_MAX_PENDING_FANOUT = 20_000;
const STORE_RETRY_DELAY_MS = 1000;

/** A store that cannot answer (Redis down) is a 503 the client retries, not a 500. */
async function storeCall<T>(pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch {
    throw new HeraldError("store_unavailable", undefined, { "Retry-After": "1" });
  }
}

export class Hub {
  readonly counters: HubCounters = { published: 0, delivered: 0, gaps: 0, slowConsumersCut: 0 };
  readonly #store: MailboxStore;
  readonly #options: HubOptions;
  readonly #subscribers = new Map<string, Set<Subscription>>();
  readonly #waiters = new Map<string, Set<Waiter>>();
  readonly #context: SubscriptionContext;
  #pending: StoredMessage[] = [];
  /** Mailboxes whose appends skipped the full fan-out queue; their subscribers replay from the store. */
  readonly #overflowed = new Set<string>();
  readonly #maxPendingFanout: number;
  #fanoutRunning = false;
  #round = 0;
  #draining = false;
  #publishesInFlight = 0;
  #lastPublishTime = 0;
  #idleWaiters: (() => void)[] = [];
  readonly #unwatch: () => void;

  constructor(options: HubOptions) {
    this.#options = options;
    this.#maxPendingFanout = options.maxPendingFanout ?? DEFAULT_MAX_PENDING_FANOUT;
    this.#store = options.store;
    this.#context = {
      store: options.store,
      replayPageSize: options.replayPageSize ?? DEFAULT_REPLAY_PAGE_SIZE,
      maxQueueBytes: options.maxQueueBytes,
      retryDelayMs: STORE_RETRY_DELAY_MS,
      onDelivered: (count) => {
        this.counters.delivered += count;
      },
      onGap: (count) => {
        this.counters.gaps += count;
      },
      onSlowConsumer: () => {
        this.counters.slowConsumersCut += 1;
      },
      onClosed: (subscription) => this.#unregister(subscription),
    };
    this.#unwatch = this.#store.watch((mailbox, messages) => this.#onAppend(mailbox, messages));
  }

  get draining(): boolean {
    return this.#draining;
  }

  get subscriberCount(): number {
    let count = 0;
    for (const set of this.#subscribers.values()) count += set.size;
    return count;
  }

  /** Live subscribers plus held long-polls of one mailbox: is anyone watching it right now? */
  watcherCount(mailbox: string): number {
    return (this.#subscribers.get(mailbox)?.size ?? 0) + (this.#waiters.get(mailbox)?.size ?? 0);
  }

  /**
   * Stores the items (all or, on an idempotency conflict, none) and hands them
   * to live subscribers. With several items, the key is made per item.
   */
  async publish(items: readonly PublishItem[], idempotencyKey?: string): Promise<Published[]> {
    this.#refuseWhileDraining();
    return this.#publishAdmitted(items, idempotencyKey);
  }

  /**
   * Admits a publish request when it arrives rather than when its body has
   * been read: refused while draining, and once admitted, drain() waits for it
   * and `publish` inside `work` stores even if a drain began meanwhile.
   */
  async admitPublish<T>(work: (publish: Hub["publish"]) => Promise<T>): Promise<T> {
    this.#refuseWhileDraining();
    this.#publishesInFlight += 1;
    try {
      return await work((items, idempotencyKey) => this.#publishAdmitted(items, idempotencyKey));
    } finally {
      this.#publishFinished();
    }
  }

  #refuseWhileDraining(): void {
    if (this.#draining) {
      throw new HeraldError("draining", undefined, { "Retry-After": String(this.#options.retryAfterSeconds ?? 1) });
    }
  }

  #publishFinished(): void {
    this.#publishesInFlight -= 1;
    if (this.#publishesInFlight === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  async #publishAdmitted(items: readonly PublishItem[], idempotencyKey?: string): Promise<Published[]> {
    if (!this.#store.ready()) throw new HeraldError("store_unavailable", undefined, { "Retry-After": "1" });
    const appendItems = items.map((item, index) => ({
      mailbox: item.mailbox,
      draft: createDraft(
        item.fields,
        this.#options.defaultTtlSeconds,
        idempotencyKey === undefined || items.length === 1 ? idempotencyKey : `${idempotencyKey}#${index}`,
        this.#publishTime(),
      ),
    }));
    this.#publishesInFlight += 1;
    let results: AppendResult[];
    try {
      results = await this.#store.append(appendItems);
    } catch {
      throw new HeraldError("store_unavailable", undefined, { "Retry-After": "1" });
    } finally {
      this.#publishFinished();
    }
    if (results.some((result) => result.status === "conflict")) throw new HeraldError("idempotency_conflict");
    return results.map((result) => {
      if (result.status === "stored") this.counters.published += 1;
      const { message } = result;
      return {
        message,
        duplicate: result.status === "duplicate",
        cursor: encodeSingleCursor(message.mailbox, message.epoch, message.seq),
      };
    });
  }

  /** A one-shot read, or a long-poll when `waitMs` > 0 and nothing follows the cursor. */
  async read(request: ReadRequest): Promise<ReadAnswer> {
    const { mailboxes } = request;
    const positions = await this.#resolvePositions(mailboxes, request.cursor);
    const waiter = request.waitMs > 0 && !this.#draining ? this.#addWaiter(mailboxes) : undefined;
    try {
      let outcome = await storeCall(readAfter(this.#store, mailboxes, positions, request.limit));
      const deadline = Date.now() + request.waitMs;
      while (waiter && outcome.events.length === 0 && !this.#draining && !request.signal?.aborted) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) break;
        await waiter.next(remaining, request.signal);
        outcome = await storeCall(readAfter(this.#store, mailboxes, positions, request.limit));
      }
      // Nothing to deliver: a client's own cursor comes back as sent ("now" resolves to a real one).
      const echoed =
        outcome.events.length === 0 && request.cursor !== undefined && request.cursor !== CURSOR_NOW
          ? request.cursor
          : undefined;
      return this.#answer(mailboxes, positions, outcome.events, echoed);
    } finally {
      if (waiter) this.#removeWaiter(mailboxes, waiter);
    }
  }

  /**
   * Registers a live subscriber at the cursor's positions. Nothing is written
   * to the sink until the caller invokes `start()` on the result.
   */
  async subscribe(mailboxes: readonly string[], cursor: string | undefined, sink: StreamSink): Promise<Subscription> {
    if (this.#draining) throw new HeraldError("draining", undefined, { "Retry-After": "1" });
    const positions = await this.#resolvePositions(mailboxes, cursor);
    // Drain may have walked the subscribers while the positions were being resolved.
    if (this.#draining) throw new HeraldError("draining", undefined, { "Retry-After": "1" });
    const subscription = new Subscription(this.#context, mailboxes, positions, sink);
    for (const mailbox of mailboxes) {
      const set = getOrCreate(this.#subscribers, mailbox, () => new Set());
      set.add(subscription);
    }
    return subscription;
  }

  /**
   * Stops taking publishes and subscriptions, answers held long-polls, ends
   * live streams, and resolves once in-flight publishes have finished.
   */
  async drain(): Promise<void> {
    this.#draining = true;
    for (const set of this.#waiters.values()) for (const waiter of set) waiter.wake();
    for (const set of this.#subscribers.values()) {
      for (const subscription of set) {
        subscription.sink.end("draining");
        subscription.close();
      }
    }
    if (this.#publishesInFlight > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  close(): void {
    this.#unwatch();
  }

  /**
   * Wall-clock time, strictly increasing across publishes: replay merges several
   * mailboxes by time, and two messages stored in the same millisecond must keep
   * the order the server saw them in (a batch's items, or close publishes).
   * 1/1024 ms steps are exact in a double at today's epoch values.
   */
  #publishTime(): number {
    const now = Date.now();
    this.#lastPublishTime = now > this.#lastPublishTime ? now : this.#lastPublishTime + 1 / 1024;
    return this.#lastPublishTime;
  }

  async #resolvePositions(mailboxes: readonly string[], cursor: string | undefined): Promise<PositionMap> {
    const positions: PositionMap = new Map();
    if (cursor === undefined) return positions;
    if (cursor === CURSOR_NOW) {
      const heads = await storeCall(Promise.all(mailboxes.map((mailbox) => this.#store.head(mailbox))));
      mailboxes.forEach((mailbox, i) => {
        const head = heads[i];
        positions.set(mailbox, head ? { epoch: head.epoch, seq: head.lastSeq } : { epoch: EMPTY_EPOCH, seq: 0 });
      });
      return positions;
    }
    for (const [mailbox, entry] of parseCursor(cursor, mailboxes)) {
      positions.set(mailbox, { epoch: entry.epoch, seq: entry.seq });
    }
    return positions;
  }

  #answer(
    mailboxes: readonly string[],
    positions: PositionMap,
    events: readonly ReadEvent[],
    unchangedCursor: string | undefined,
  ): ReadAnswer {
    const messages: ReadAnswer["messages"] = [];
    const gaps: GapNotice[] = [];
    for (const event of events) {
      if (event.type === "gap") gaps.push(...event.gaps);
      else messages.push({ message: event.message, cursor: event.cursor });
    }
    this.counters.gaps += gaps.length;
    this.counters.delivered += messages.length;
    return { messages, gaps, cursor: unchangedCursor ?? cursorOf(mailboxes, positions) };
  }

  #addWaiter(mailboxes: readonly string[]): Waiter {
    const waiter = createWaiter();
    for (const mailbox of mailboxes) {
      const set = getOrCreate(this.#waiters, mailbox, () => new Set());
      set.add(waiter);
    }
    return waiter;
  }

  #removeWaiter(mailboxes: readonly string[], waiter: Waiter): void {
    for (const mailbox of mailboxes) {
      const set = this.#waiters.get(mailbox);
      if (!set) continue;
      set.delete(waiter);
      if (set.size === 0) this.#waiters.delete(mailbox);
    }
  }

  #unregister(subscription: Subscription): void {
    for (const mailbox of subscription.mailboxes) {
      const set = this.#subscribers.get(mailbox);
      if (!set) continue;
      set.delete(subscription);
      if (set.size === 0) this.#subscribers.delete(mailbox);
    }
  }

  #onAppend(mailbox: string, messages: readonly StoredMessage[] | undefined): void {
    const waiters = this.#waiters.get(mailbox);
    if (waiters) for (const waiter of waiters) waiter.wake();
    if (messages === undefined) {
      // Another node appended: subscribers re-read from the store.
      const subscribers = this.#subscribers.get(mailbox);
      if (subscribers) for (const subscription of subscribers) void subscription.pump();
      return;
    }
    if (!this.#subscribers.has(mailbox)) return;
    if (this.#pending.length + messages.length > this.#maxPendingFanout) {
      // Fan-out is this far behind: these stay in the store only, and the mailbox's subscribers
      // re-read it after the current round, so the queue stays bounded and nothing is lost.
      this.#overflowed.add(mailbox);
    } else {
      for (const message of messages) this.#pending.push(message);
    }
    if (this.#fanoutRunning) return;
    // Every publish committed in this turn of the event loop joins one round: one write per subscriber, not one per message.
    this.#fanoutRunning = true;
    setImmediate(() => void this.#runFanout());
  }

  /**
   * Delivers pending messages in commit order, one round per batch. Within a
   * round every subscriber gets all its messages in one write, and the loop
   * yields every chunk so that 10,000 writes do not starve the server.
   */
  async #runFanout(): Promise<void> {
    this.#fanoutRunning = true;
    const chunkSize = this.#options.fanoutChunkSize ?? DEFAULT_FANOUT_CHUNK_SIZE;
    try {
      while (this.#pending.length > 0) {
        // Stores report appends per mailbox; publish time restores the order across mailboxes.
        let batch = this.#pending.sort(byPublishTime);
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
            batch = batch.concat(this.#pending.slice(absorbed)).sort(byPublishTime);
            absorbed = this.#pending.length;
            byMailbox = groupByMailbox(batch);
            frames = new Map();
          }
        }
      }
    } finally {
      this.#fanoutRunning = false;
      for (const mailbox of this.#overflowed) {
        const subscribers = this.#subscribers.get(mailbox);
        if (subscribers) for (const subscription of subscribers) void subscription.pump();
      }
      this.#overflowed.clear();
    }
  }
}

function byPublishTime(x: StoredMessage, y: StoredMessage): number {
  return x.timeMs - y.timeMs;
}

function groupByMailbox(batch: readonly StoredMessage[]): Map<string, StoredMessage[]> {
  const byMailbox = new Map<string, StoredMessage[]>();
  for (const message of batch) getOrCreate(byMailbox, message.mailbox, () => []).push(message);
  return byMailbox;
}

export function createHub(options: HubOptions): Hub {
  return new Hub(options);
}
