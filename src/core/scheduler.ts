import type { AppendResult } from "../store/mailbox-store.js";
import type { CompletedDelivery, ScheduledEntry, ScheduleStore } from "../store/schedule-store.js";

/** Entries claimed, appended and completed per round at most. */
export const SCHEDULE_BATCH_SIZE = 500;

export interface SchedulerOptions {
  readonly store: ScheduleStore;
  /** Appends due entries like fresh publishes (the publish command's deliverDue); results in entry order. */
  readonly deliver: (entries: readonly ScheduledEntry[]) => Promise<AppendResult[]>;
  /** A claim not completed within this is claimed again, here or on another node. */
  readonly leaseMs: number;
  /** The longest the store goes unasked: other nodes' entries, restarts, failed rounds. */
  readonly pollMs: number;
  readonly batchSize?: number;
  /** Told about the first failed round of a streak (rounds are retried every pollMs) and entries dropped for a key conflict. */
  readonly onError: (error: unknown) => void;
  readonly now?: () => number;
}

/** An entry whose append was refused: its key was used in its mailbox's log with another message. */
export class ScheduledConflictError extends Error {
  override name = "ScheduledConflictError";
  constructor(readonly entry: ScheduledEntry) {
    super(`scheduled message ${entry.id} for ${entry.mailbox} dropped: its idempotency key names another message`);
  }
}

/**
 * Delivers scheduled publishes when due: claims them from the store in
 * batches (under a lease), appends them through the publish command, and
 * completes them. It wakes on a timer set to the next due time, at most every
 * `pollMs` (entries of other nodes, a restart's late ones), and at once when a
 * local publish adds an earlier one. A failed round leaves its claims to
 * expire and be claimed again; the append's idempotency keys make a second
 * append of an entry a duplicate.
 */
export class Scheduler {
  readonly #options: SchedulerOptions;
  readonly #now: () => number;
  readonly #batchSize: number;
  #timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires. */
  #timerAt = Number.POSITIVE_INFINITY;
  #round: Promise<void> | undefined;
  #again = false;
  #stopped = true;
  /** The last round failed: the next failures are not reported again (a store that is down fails every poll). */
  #failing = false;

  constructor(options: SchedulerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#batchSize = options.batchSize ?? SCHEDULE_BATCH_SIZE;
  }

  /** Starts with a round at once: entries that fell due while no node ran are delivered now. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#arm(0);
  }

  /** An entry due at `dueAtMs` was added here: make sure a round runs by then. */
  wake(dueAtMs: number): void {
    if (this.#stopped) return;
    if (this.#round !== undefined) {
      if (dueAtMs <= this.#now()) this.#again = true;
      else if (dueAtMs < this.#timerAt) this.#timerAt = dueAtMs;
      return;
    }
    if (dueAtMs < this.#timerAt) this.#arm(dueAtMs - this.#now());
  }

  /** Stops taking rounds; resolves once the round in progress (its appends and completions) finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#round;
  }

  #arm(delayMs: number): void {
    clearTimeout(this.#timer);
    const delay = Math.max(0, Math.min(delayMs, this.#options.pollMs));
    this.#timerAt = this.#now() + delay;
    this.#timer = setTimeout(() => this.#tick(), delay);
    this.#timer.unref();
  }

  #tick(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    if (this.#stopped || this.#round !== undefined) return;
    let next = this.#options.pollMs;
    this.#round = this.#deliverDue()
      .then((delay) => {
        next = delay;
        this.#failing = false;
      })
      .catch((error: unknown) => {
        if (!this.#failing) this.#options.onError(error);
        this.#failing = true;
      })
      .finally(() => {
        this.#round = undefined;
        if (this.#stopped) return;
        // A wake during the round asked for an earlier time than the next due one the round saw.
        const asked = this.#again ? 0 : this.#timerAt - this.#now();
        this.#again = false;
        this.#arm(Math.min(next, asked));
      });
  }

  /**
   * Batches of claim, append, complete until nothing more is due; resolves with the delay to the next
   * due entry. Batches are appended one after another, in due order; the next batch is claimed, and the
   * last one completed, while one is being appended.
   */
  async #deliverDue(): Promise<number> {
    const { store, leaseMs } = this.#options;
    const claim = () => {
      const now = this.#now();
      return store.claim(now, now + leaseMs, this.#batchSize);
    };
    let claimed = await claim();
    let completing: Promise<void> = Promise.resolve();
    while (claimed.length > 0) {
      const appending = this.#append(claimed);
      const more = claimed.length === this.#batchSize && !this.#stopped;
      const next = more ? claim() : Promise.resolve([]);
      // Whichever fails first fails the round; the others must not be left rejected and unheard.
      next.catch(() => {});
      const done = await appending;
      // A store that answers at once (memory) would deliver every batch in one turn: let fan-out and
      // requests run between batches.
      await new Promise((resolve) => setImmediate(resolve));
      await completing;
      completing = store.complete(done);
      completing.catch(() => {});
      claimed = await next;
    }
    await completing;
    const next = await store.nextDueAt();
    return next === undefined ? this.#options.pollMs : next - this.#now();
  }

  /**
   * Appends claimed entries in one call. A key conflict stores nothing of a
   * call, so then each entry goes alone and those that conflict are dropped.
   */
  async #append(entries: readonly ScheduledEntry[]): Promise<CompletedDelivery[]> {
    const results = await this.#options.deliver(entries);
    if (!results.some((result) => result.status === "conflict")) {
      return entries.map((entry, i) => ({ entry, expiresAtMs: results[i]?.message.expiresAtMs }));
    }
    const done: CompletedDelivery[] = [];
    for (const entry of entries) {
      const [result] = await this.#options.deliver([entry]);
      if (result?.status === "conflict") this.#options.onError(new ScheduledConflictError(entry));
      done.push({ entry, expiresAtMs: result?.status === "conflict" ? undefined : result?.message.expiresAtMs });
    }
    return done;
  }
}
