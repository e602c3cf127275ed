import type { StoredMessage } from "../store/mailbox-store.js";
import type { PushSubscriptionStore } from "../store/push-subscription-store.js";
import type { PushSettings } from "./push-config.js";
import { type PushCounters, PushDispatcher, type PushProblem } from "./push-dispatcher.js";
import { createWorkerPushSender } from "./worker-sender.js";

/** Web Push as the server runs it: the settings, the subscriptions, and the sending. */
export interface WebPush {
  readonly settings: PushSettings;
  readonly subscriptions: PushSubscriptionStore;
  readonly counters: Readonly<PushCounters>;
  /** Pushes queued or waiting to retry on this node. */
  queued(): number;
  /** Pushes sent and not yet answered on this node (at most push.concurrency). */
  inFlight(): number;
  /** Pushes the messages a publish on this node stored; see PublishCommandOptions.onPublished. */
  publish(messages: readonly StoredMessage[]): void;
  /** Stops sending (what is queued is given up, counted and logged) and closes the subscription store. */
  close(): Promise<void>;
}

export interface WebPushOptions {
  readonly settings: PushSettings;
  readonly subscriptions: PushSubscriptionStore;
  /** A CA (PEM) trusted besides the system's: the tests' push service has one of its own. */
  readonly ca?: string;
  /** The first retry's delay (tests shorten it). */
  readonly backoffMs?: number;
  readonly onProblem?: (problem: PushProblem) => void;
}

/** Lapsed subscriptions are removed this often, this many at a time (the rest on the next sweep). */
const PRUNE_INTERVAL_MS = 60_000;
const PRUNE_BATCH = 1000;
const PRUNE_BATCHES = 20;

export function createWebPush(options: WebPushOptions): WebPush {
  const { settings, subscriptions } = options;
  const sender = createWorkerPushSender({
    vapid: settings.vapid,
    timeoutMs: settings.timeoutSeconds * 1000,
    maxSockets: settings.concurrency,
    ...(options.ca === undefined ? {} : { ca: options.ca }),
  });
  const dispatcher = new PushDispatcher({
    store: subscriptions,
    sender,
    concurrency: settings.concurrency,
    maxQueue: settings.maxQueue,
    maxAttempts: settings.maxAttempts,
    maxRetryAfterMs: settings.maxRetryAfterSeconds * 1000,
    ...(options.backoffMs === undefined ? {} : { backoffMs: options.backoffMs }),
    ...(options.onProblem === undefined ? {} : { onProblem: options.onProblem }),
  });
  const sweep = async () => {
    // Batch after batch while they come back full, so a backlog drains, but never more than this a sweep.
    for (let batch = 0; batch < PRUNE_BATCHES; batch++) {
      if ((await subscriptions.prune(Date.now(), PRUNE_BATCH)) < PRUNE_BATCH) return;
    }
  };
  const prune = setInterval(() => {
    sweep().catch((error: unknown) => options.onProblem?.({ what: "prune", error }));
  }, PRUNE_INTERVAL_MS);
  prune.unref();
  return {
    settings,
    subscriptions,
    counters: dispatcher.counters,
    queued: () => dispatcher.queued,
    inFlight: () => dispatcher.inFlight,
    publish: (messages) => dispatcher.enqueue(messages),
    async close() {
      clearInterval(prune);
      const abandoned = dispatcher.close();
      if (abandoned > 0) {
        options.onProblem?.({
          what: "shutdown",
          reason: `${abandoned} queued pushes given up (herald_push_dropped_total)`,
        });
      }
      await subscriptions.close();
    },
  };
}
