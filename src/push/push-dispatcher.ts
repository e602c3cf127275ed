import type { StoredMessage } from "../store/mailbox-store.js";
import type { PushSubscriptionStore, PushTarget } from "../store/push-subscription-store.js";
import { pushBody, pushFields, pushTtlSeconds } from "./push-payload.js";
import { type PushFields, type PushJob, PushQueue } from "./push-queue.js";
import type { PushSender } from "./push-sender.js";

export interface PushDispatcherOptions {
  readonly store: PushSubscriptionStore;
  readonly sender: PushSender;
  /** Pushes in flight at once. */
  readonly concurrency: number;
  /** Pushes waiting (retries included) beyond which new ones are dropped and counted. */
  readonly maxQueue: number;
  /** Attempts per push before it counts as failed. */
  readonly maxAttempts: number;
  /** A Retry-After longer than this fails the push instead of holding it. */
  readonly maxRetryAfterMs: number;
  /** The first retry's delay; each further one doubles it (with jitter). */
  readonly backoffMs?: number;
  /** Told about what went wrong (a lookup or removal the store refused, a push given up), for the log. */
  readonly onProblem?: (problem: PushProblem) => void;
}

export interface PushProblem {
  readonly what: "lookup" | "remove" | "failed" | "dropped" | "prune" | "shutdown";
  readonly mailbox?: string;
  readonly status?: number;
  readonly reason?: string;
  readonly error?: unknown;
}

export interface PushCounters {
  /** Pushes a push service accepted. */
  sent: number;
  /** Pushes given up: refused, out of attempts, expired while waiting, or dropped on a full queue. */
  failed: number;
  /** Subscriptions deleted because their push service answered 404 or 410. */
  removed: number;
  /** Attempts repeated after 429, 5xx, 413, a timeout or a network error. */
  retried: number;
  /** Pushes never queued because maxQueue was reached (also counted in failed). */
  dropped: number;
}

/** A stored message that wants pushing, and its fields. */
interface Pending {
  readonly message: StoredMessage;
  readonly fields: PushFields;
}

const DEFAULT_BACKOFF_MS = 1000;

/**
 * Sends each published message to the push subscriptions of its mailbox,
 * on the node that stored it. Sends run at most `concurrency` at a time from
 * one bounded queue (a message to 10,000 browsers is one entry in it), and
 * the sender does the costly part (encryption, TLS) off the event loop, so a
 * burst does not hold up the fan-out to open streams. A push lives in this
 * process only: a node that dies with pushes queued loses them (the
 * messages themselves are in the store, and open streams and reconnects
 * still get them).
 */
export class PushDispatcher {
  readonly counters: PushCounters = { sent: 0, failed: 0, removed: 0, retried: 0, dropped: 0 };
  readonly #options: PushDispatcherOptions;
  readonly #queue = new PushQueue();
  #active = 0;
  #waiting = 0;
  readonly #timers = new Set<NodeJS.Timeout>();
  #closed = false;

  constructor(options: PushDispatcherOptions) {
    this.#options = options;
  }

  /** Pushes queued or waiting to retry. */
  get queued(): number {
    return this.#queue.size + this.#waiting;
  }

  /** Pushes sent and not yet answered. */
  get inFlight(): number {
    return this.#active;
  }

  /**
   * Queues pushes for freshly stored messages; the subscriptions are looked up once per mailbox, and
   * not at all for messages that opted out or while the queue is full.
   */
  enqueue(messages: readonly StoredMessage[]): void {
    if (this.#closed) return;
    const byMailbox = new Map<string, Pending[]>();
    for (const message of messages) {
      const fields = pushFields(message);
      if (fields === undefined) continue;
      const list = byMailbox.get(message.mailbox);
      if (list === undefined) byMailbox.set(message.mailbox, [{ message, fields }]);
      else list.push({ message, fields });
    }
    for (const [mailbox, list] of byMailbox) {
      if (this.queued >= this.#options.maxQueue) {
        // Uncounted: how many browsers it would have reached is not known without the lookup.
        this.#options.onProblem?.({ what: "dropped", mailbox });
        continue;
      }
      this.#options.store.targets(mailbox, Date.now()).then(
        (targets) => this.#queueAll(targets, list),
        (error: unknown) => this.#options.onProblem?.({ what: "lookup", mailbox, error }),
      );
    }
  }

  #queueAll(targets: readonly PushTarget[], messages: readonly Pending[]): void {
    if (this.#closed || targets.length === 0) return;
    for (const { message, fields } of messages) {
      const room = this.#options.maxQueue - this.queued;
      if (room < targets.length) this.#drop(targets.length - Math.max(0, room), message.mailbox);
      if (room <= 0) continue;
      const taken = room < targets.length ? targets.slice(0, room) : targets;
      this.#queue.addBatch(message, fields, taken);
    }
    this.#pump();
  }

  #drop(count: number, mailbox: string): void {
    const before = this.counters.dropped;
    this.counters.dropped += count;
    this.counters.failed += count;
    // One report per thousand, not per push: the count is in the metrics.
    if (before === 0 || Math.floor(before / 1000) !== Math.floor(this.counters.dropped / 1000)) {
      this.#options.onProblem?.({ what: "dropped", mailbox });
    }
  }

  #pump(): void {
    while (this.#active < this.#options.concurrency && !this.#closed) {
      const job = this.#queue.take();
      if (job === undefined) return;
      this.#active += 1;
      this.#run(job)
        .catch((error: unknown) => this.#fail(job, undefined, `push failed: ${(error as Error).message}`))
        .finally(() => {
          this.#active -= 1;
          this.#pump();
        });
    }
  }

  async #run(job: PushJob): Promise<void> {
    const nowMs = Date.now();
    if (job.message.expiresAtMs <= nowMs) {
      this.#fail(job, undefined, "the message expired before it could be pushed");
      return;
    }
    const body = job.body ?? pushBody(job.message, job.fields, job.withoutData);
    const content = { ...body, ttlSeconds: pushTtlSeconds(job.message, nowMs) };
    const outcome = await this.#options.sender.send(job.subscription, content);
    if (this.#closed) return;
    switch (outcome.kind) {
      case "sent":
        this.counters.sent += 1;
        return;
      case "gone":
        await this.#remove(job.subscription);
        return;
      case "too-large":
        if (!job.withoutData && job.fields.data !== undefined) {
          this.counters.retried += 1;
          const { body: _withData, ...rest } = job;
          this.#queue.add({ ...rest, withoutData: true });
          return;
        }
        this.#fail(job, 413, "the push service refused the payload as too large");
        return;
      case "retry":
        this.#retry(job, outcome.status, outcome.retryAfterMs, outcome.reason);
        return;
      case "failed":
        this.#fail(job, outcome.status, "the push service refused it");
    }
  }

  #retry(job: PushJob, status: number | undefined, retryAfterMs: number | undefined, reason: string | undefined): void {
    const { maxAttempts, maxRetryAfterMs } = this.#options;
    const why = reason ?? `the push service answered ${status}`;
    if (job.attempt >= maxAttempts) {
      this.#fail(job, status, `${why}, ${maxAttempts} attempts`);
      return;
    }
    if (retryAfterMs !== undefined && retryAfterMs > maxRetryAfterMs) {
      this.#fail(
        job,
        status,
        `${why} with Retry-After ${Math.round(retryAfterMs / 1000)} s (push.maxRetryAfterSeconds)`,
      );
      return;
    }
    const base = (this.#options.backoffMs ?? DEFAULT_BACKOFF_MS) * 2 ** (job.attempt - 1);
    const delayMs = Math.max(retryAfterMs ?? 0, base * (0.5 + Math.random() / 2));
    if (Date.now() + delayMs >= job.message.expiresAtMs) {
      this.#fail(job, status, `${why}; the message expires before a retry`);
      return;
    }
    this.counters.retried += 1;
    this.#waiting += 1;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#waiting -= 1;
      this.#queue.add({ ...job, attempt: job.attempt + 1 });
      this.#pump();
    }, delayMs);
    timer.unref();
    this.#timers.add(timer);
  }

  async #remove(subscription: PushTarget): Promise<void> {
    try {
      if (await this.#options.store.remove(subscription.id, subscription.endpoint)) this.counters.removed += 1;
    } catch (error) {
      this.#options.onProblem?.({ what: "remove", error });
    }
  }

  #fail(job: PushJob, status: number | undefined, reason: string): void {
    this.counters.failed += 1;
    this.#options.onProblem?.({
      what: "failed",
      mailbox: job.message.mailbox,
      ...(status === undefined ? {} : { status }),
      reason,
    });
  }

  /**
   * Stops sending: pushes still queued or waiting to retry are given up (counted as dropped and failed),
   * in-flight ones finish unheeded. Answers how many were given up.
   */
  close(): number {
    if (this.#closed) return 0;
    this.#closed = true;
    const abandoned = this.queued;
    this.counters.dropped += abandoned;
    this.counters.failed += abandoned;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#queue.clear();
    this.#waiting = 0;
    this.#options.sender.close();
    return abandoned;
  }
}
