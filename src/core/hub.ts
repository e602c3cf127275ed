import { createLocalPresence } from "../store/local-presence.js";
import type { MailboxStore, StoredMessage } from "../store/mailbox-store.js";
import { createMemorySchedule } from "../store/memory-schedule.js";
import type { PresenceStore } from "../store/presence-store.js";
import type { ScheduleStore } from "../store/schedule-store.js";
import type { StreamSink } from "./delivery.js";
import { createDrainGate, type DrainGate } from "./drain-gate.js";
import { Fanout } from "./fanout.js";
import { type LatestAnswer, latestSnapshot } from "./latest.js";
import type { DeliveryView } from "./message-filter.js";
import { Presence } from "./presence.js";
import { createPublishCommand, type PublishCommand } from "./publish-command.js";
import { resolvePositions } from "./read-plan.js";
import { ReadStates } from "./read-states.js";
import type { Reader, ReaderOptions } from "./reader.js";
import { ReaderSession } from "./reader-session.js";
import { type ReadAnswer, type ReadRequest, Reads } from "./reads.js";
import { DEFAULT_SCHEDULE_OPTIONS, ScheduledMessages, type ScheduleOptions } from "./scheduled-messages.js";
import { Scheduler } from "./scheduler.js";
import { Subscription, type SubscriptionContext } from "./subscription.js";

export interface HubOptions {
  readonly store: MailboxStore;
  /** Retention of a message whose publisher gave no ttl. */
  readonly defaultTtlSeconds: number;
  /** Bytes queued for one connection beyond which a live subscriber is cut. */
  readonly maxQueueBytes: number;
  /** Bytes queued beyond which a `mode=latest` subscriber catches up from the store instead (at most half of maxQueueBytes). */
  readonly latestQueueBytes?: number;
  /** Messages read from the store per replay step of a subscriber. */
  readonly replayPageSize?: number;
  /** How long a subscriber with bytes waiting may read nothing, while catching up from the store, before it is cut. */
  readonly sendTimeoutMs?: number;
  /** Subscribers written to before the fan-out loop yields to the event loop. */
  readonly fanoutChunkSize?: number;
  /** Messages waiting for fan-out at most; beyond it subscribers catch up from the store instead. */
  readonly maxPendingFanout?: number;
  /** Who is connected where; a single-node one when not given. */
  readonly presenceStore?: PresenceStore;
  /** Above this many present readers, presence watchers get a throttled count instead of members. */
  readonly maxPresenceMembers?: number;
  /** How long a long-poller stays present after its poll answered. */
  readonly longPollGraceMs?: number;
  /** Told about presence and read-state work the store failed; streams carry on without it. */
  readonly onError?: (error: unknown) => void;
  /** Where scheduled publishes wait; a memory one (lost with the process) when not given. */
  readonly scheduleStore?: ScheduleStore;
  /** Bounds and timing of scheduled delivery. */
  readonly schedule?: ScheduleOptions;
  /** Told about a scheduled delivery round that failed (retried) or a scheduled message dropped. */
  readonly onScheduleError?: (error: unknown) => void;
  /** Every message stored by a publish on this node, once (see PublishCommandOptions.onPublished). */
  readonly onPublished?: (messages: readonly StoredMessage[]) => void;
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
export const DEFAULT_LATEST_QUEUE_BYTES = 64 * 1024;
export const DEFAULT_SEND_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_PRESENCE_MEMBERS = 1000;
export const DEFAULT_LONG_POLL_GRACE_MS = 10_000;

/**
 * The core's face: publishing (through the one publish command), live
 * subscriptions and their fan-out, one-shot reads and long-polls, and drain.
 * Each of those lives in its own module; the hub wires them to the store.
 */
export class Hub {
  readonly counters: HubCounters = { published: 0, delivered: 0, gaps: 0, slowConsumersCut: 0 };
  /** Every publish goes through this. */
  readonly publishing: PublishCommand;
  /** Who is here: GET …/presence, and the presence events of streams. */
  readonly presence: Presence;
  /** Where each reader has read to, and the connections told when it moves. */
  readonly readStates: ReadStates;
  /** Publishes waiting for their time: GET …/scheduled, DELETE /v1/scheduled/{id}. */
  readonly scheduled: ScheduledMessages;
  readonly #scheduler: Scheduler;
  readonly #sessionDeps: ConstructorParameters<typeof ReaderSession>[0];
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
    const scheduleStore = options.scheduleStore ?? createMemorySchedule();
    const schedule = options.schedule ?? DEFAULT_SCHEDULE_OPTIONS;
    this.#scheduler = new Scheduler({
      store: scheduleStore,
      deliver: (entries) => this.publishing.deliverDue(entries),
      leaseMs: schedule.leaseMs,
      pollMs: schedule.pollMs,
      onError: options.onScheduleError ?? options.onError ?? (() => {}),
    });
    this.scheduled = new ScheduledMessages({
      store: scheduleStore,
      options: schedule,
      defaultTtlSeconds: options.defaultTtlSeconds,
      onAdded: (dueAtMs) => this.#scheduler.wake(dueAtMs),
    });
    this.publishing = createPublishCommand({
      store: options.store,
      gate: this.#gate,
      defaultTtlSeconds: options.defaultTtlSeconds,
      onStored: (count) => {
        this.counters.published += count;
      },
      scheduled: this.scheduled,
      ...(options.onPublished === undefined ? {} : { onPublished: options.onPublished }),
    });
    this.#scheduler.start();
    this.#context = {
      store: options.store,
      replayPageSize: options.replayPageSize ?? DEFAULT_REPLAY_PAGE_SIZE,
      maxQueueBytes: options.maxQueueBytes,
      latestQueueBytes: Math.min(
        options.latestQueueBytes ?? DEFAULT_LATEST_QUEUE_BYTES,
        Math.floor(options.maxQueueBytes / 2),
      ),
      sendTimeoutMs: options.sendTimeoutMs ?? DEFAULT_SEND_TIMEOUT_MS,
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
    const onError = options.onError ?? (() => {});
    this.presence = new Presence({
      store: options.presenceStore ?? createLocalPresence(),
      maxMembers: options.maxPresenceMembers ?? DEFAULT_MAX_PRESENCE_MEMBERS,
      longPollGraceMs: options.longPollGraceMs ?? DEFAULT_LONG_POLL_GRACE_MS,
      onError,
    });
    this.readStates = new ReadStates(options.store);
    this.#sessionDeps = {
      presence: this.presence,
      reads: this.readStates,
      onError,
      maxQueueBytes: options.maxQueueBytes,
      onSlowConsumer: () => {
        this.counters.slowConsumersCut += 1;
      },
    };
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

  /** Mailboxes with a live subscriber or a held long-poll (each once; for the admin console). */
  *watchedMailboxes(): Generator<string> {
    yield* this.#fanout.mailboxes();
    for (const mailbox of this.#reads.mailboxes()) if (this.#fanout.count(mailbox) === 0) yield mailbox;
  }

  /**
   * A one-shot read, or a long-poll when `waitMs` > 0 and nothing follows the
   * cursor. A long-poll's reader is present while it waits and for a grace
   * period after; a one-shot read (`waitMs` 0) makes nobody present, so a
   * cheap request cannot make a reader appear.
   */
  async read(request: ReadRequest, reader?: Reader): Promise<ReadAnswer> {
    const leave = reader && request.waitMs > 0 ? this.presence.poll(request.mailboxes, reader) : undefined;
    try {
      return await this.#reads.read(request);
    } finally {
      leave?.();
    }
  }

  /**
   * The newest message of each key of one mailbox, at most `maxKeys`, and the
   * cursor a subscriber continues from (see latest.ts). Like a one-shot read,
   * it makes nobody present and is answered while draining.
   */
  async latest(mailbox: string, maxKeys: number): Promise<LatestAnswer> {
    const answer = await latestSnapshot(this.#store, mailbox, maxKeys);
    this.counters.delivered += answer.messages.length;
    return answer;
  }

  /**
   * Registers a live subscriber at the cursor's positions. Nothing is written
   * to the sink until the caller invokes `start()` on the result.
   */
  async subscribe(
    mailboxes: readonly string[],
    cursor: string | undefined,
    sink: StreamSink,
    options: ReaderOptions & DeliveryView = {},
  ): Promise<Subscription> {
    this.#gate.assertOpen();
    const positions = await resolvePositions(this.#store, mailboxes, cursor);
    // Drain may have begun while the positions were being resolved.
    this.#gate.assertOpen();
    const extras =
      options.reader || options.presence ? new ReaderSession(this.#sessionDeps, mailboxes, options, sink) : undefined;
    const view: DeliveryView = {
      ...(options.filter ? { filter: options.filter } : {}),
      ...(options.latest ? { latest: true } : {}),
    };
    const subscription = new Subscription(this.#context, mailboxes, positions, sink, extras, view);
    this.#fanout.add(subscription);
    return subscription;
  }

  /**
   * Stops taking publishes and subscriptions, answers held long-polls, closes
   * live subscriptions (their connections are ended by whoever owns them),
   * stops delivering scheduled publishes, and resolves once admitted publishes
   * and the scheduled delivery under way have finished.
   */
  drain(): Promise<void> {
    const drained = Promise.all([this.#gate.drain(), this.#scheduler.stop()]).then(() => {});
    this.#reads.wakeAll();
    for (const subscription of this.#fanout.all()) subscription.close();
    return drained;
  }

  /** Stops listening to the stores; whoever built them closes them. */
  close(): void {
    void this.#scheduler.stop();
    this.#unwatch();
    this.presence.close();
    this.readStates.close();
  }

  #onAppend(mailbox: string, messages: readonly StoredMessage[] | undefined): void {
    this.#reads.wake(mailbox);
    this.#fanout.onAppend(mailbox, messages);
  }
}

export function createHub(options: HubOptions): Hub {
  return new Hub(options);
}
