import type { MailboxStore, StoredMessage } from "../store/mailbox-store.js";
import type { StreamSink } from "./delivery.js";
import { createDrainGate, type DrainGate } from "./drain-gate.js";
import { Fanout } from "./fanout.js";
import { createPublishCommand, type PublishCommand } from "./publish-command.js";
import { resolvePositions } from "./read-plan.js";
import { type ReadAnswer, type ReadRequest, Reads } from "./reads.js";
import { Subscription, type SubscriptionContext } from "./subscription.js";

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

/**
 * The core's face: publishing (through the one publish command), live
 * subscriptions and their fan-out, one-shot reads and long-polls, and drain.
 * Each of those lives in its own module; the hub wires them to the store.
 */
export class Hub {
  readonly counters: HubCounters = { published: 0, delivered: 0, gaps: 0, slowConsumersCut: 0 };
  /** Every publish goes through this. */
  readonly publishing: PublishCommand;
  readonly #store: MailboxStore;
  readonly #gate: DrainGate = createDrainGate();
  readonly #fanout: Fanout;
  readonly #reads: Reads;
  readonly #context: SubscriptionContext;
  readonly #unwatch: () => void;

  constructor(options: HubOptions) {
    this.#store = options.store;
    this.#fanout = new Fanout({
      chunkSize: options.fanoutChunkSize ?? DEFAULT_FANOUT_CHUNK_SIZE,
      maxPending: options.maxPendingFanout ?? DEFAULT_MAX_PENDING_FANOUT,
    });
    this.#reads = new Reads({
      store: options.store,
      gate: this.#gate,
      onAnswered: (delivered, gaps) => {
        this.counters.delivered += delivered;
        this.counters.gaps += gaps;
      },
    });
    this.publishing = createPublishCommand({
      store: options.store,
      gate: this.#gate,
      defaultTtlSeconds: options.defaultTtlSeconds,
      onStored: (count) => {
        this.counters.published += count;
      },
    });
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
      onClosed: (subscription) => this.#fanout.remove(subscription),
    };
    this.#unwatch = this.#store.watch((mailbox, messages) => this.#onAppend(mailbox, messages));
  }

  get draining(): boolean {
    return this.#gate.draining;
  }

  get subscriberCount(): number {
    return this.#fanout.subscriberCount;
  }

  /** Live subscribers plus held long-polls of one mailbox: is anyone watching it right now? */
  watcherCount(mailbox: string): number {
    return this.#fanout.count(mailbox) + this.#reads.count(mailbox);
  }

  /** A one-shot read, or a long-poll when `waitMs` > 0 and nothing follows the cursor. */
  read(request: ReadRequest): Promise<ReadAnswer> {
    return this.#reads.read(request);
  }

  /**
   * Registers a live subscriber at the cursor's positions. Nothing is written
   * to the sink until the caller invokes `start()` on the result.
   */
  async subscribe(mailboxes: readonly string[], cursor: string | undefined, sink: StreamSink): Promise<Subscription> {
    this.#gate.assertOpen();
    const positions = await resolvePositions(this.#store, mailboxes, cursor);
    // Drain may have begun while the positions were being resolved.
    this.#gate.assertOpen();
    const subscription = new Subscription(this.#context, mailboxes, positions, sink);
    this.#fanout.add(subscription);
    return subscription;
  }

  /**
   * Stops taking publishes and subscriptions, answers held long-polls, closes
   * live subscriptions (their connections are ended by whoever owns them), and
   * resolves once admitted publishes have finished.
   */
  drain(): Promise<void> {
    const drained = this.#gate.drain();
    this.#reads.wakeAll();
    for (const subscription of this.#fanout.all()) subscription.close();
    return drained;
  }

  close(): void {
    this.#unwatch();
  }

  #onAppend(mailbox: string, messages: readonly StoredMessage[] | undefined): void {
    this.#reads.wake(mailbox);
    this.#fanout.onAppend(mailbox, messages);
  }
}

export function createHub(options: HubOptions): Hub {
  return new Hub(options);
}
