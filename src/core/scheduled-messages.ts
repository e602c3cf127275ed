import { nanoid } from "nanoid";
import { HeraldError } from "../errors.js";
import type {
  CancelResult,
  ScheduledDraft,
  ScheduledEntry,
  ScheduledOriginal,
  ScheduleStore,
} from "../store/schedule-store.js";
import { orUnavailable } from "../store/store-unavailable.js";
import type { MessageFields } from "./message-input.js";
import { resolveDueAt, type ScheduleSpec, scheduleFingerprint } from "./schedule-input.js";

/** Bounds and timing of scheduled delivery (the config file's `schedule` section, in ms). */
export interface ScheduleOptions {
  /** How far ahead a publish may be scheduled. */
  readonly maxDelayMs: number;
  /** Entries waiting per mailbox at most. */
  readonly maxPendingPerMailbox: number;
  /** Entries waiting in all (every node sharing the store) at most. */
  readonly maxPending: number;
  /** A claim not completed within this is claimed again. */
  readonly leaseMs: number;
  /** How often the store is asked for due entries besides the timer to the next one. */
  readonly pollMs: number;
}

export const DEFAULT_SCHEDULE_OPTIONS: ScheduleOptions = {
  maxDelayMs: 7 * 24 * 60 * 60_000,
  maxPendingPerMailbox: 1000,
  maxPending: 100_000,
  leaseMs: 30_000,
  pollMs: 1000,
};

/** Pending entries one listing (GET …/scheduled?limit=) answers by default, and at most. */
export const DEFAULT_SCHEDULED_LISTED = 100;
export const MAX_SCHEDULED_LISTED = 1000;

/** One message of a scheduled publish, its idempotency key already made per item. */
export interface ScheduleItem {
  readonly mailbox: string;
  readonly fields: MessageFields;
  readonly when: ScheduleSpec;
  readonly idempotencyKey?: string;
}

/** What a scheduled publish answers per message. */
export interface Scheduled extends ScheduledOriginal {
  /** True when the idempotency key named an entry scheduled before, and nothing was added. */
  readonly duplicate: boolean;
}

export interface ScheduledMessagesOptions {
  readonly store: ScheduleStore;
  readonly options: ScheduleOptions;
  /** Retention of a message whose publisher gave no ttl, counted from its delivery. */
  readonly defaultTtlSeconds: number;
  /** Told the earliest due time of what was just added, so the scheduler can wake for it. */
  readonly onAdded: (dueAtMs: number) => void;
  readonly now?: () => number;
}

/** `{"id","mailbox","scheduledFor"}`: what a scheduled publish answers. */
export function scheduledJson(scheduled: ScheduledOriginal): string {
  return `{"id":${JSON.stringify(scheduled.id)},"mailbox":${JSON.stringify(scheduled.mailbox)},"scheduledFor":"${new Date(scheduled.dueAtMs).toISOString()}"}`;
}

/** A pending entry as GET …/scheduled lists it: the scheduled answer and the message fields. */
export function pendingJson(entry: ScheduledEntry): string {
  const head = scheduledJson(entry);
  return entry.fieldsJson === "{}" ? head : `${head.slice(0, -1)},${entry.fieldsJson.slice(1)}`;
}

/**
 * Publishes waiting for their time, as the publish command and the routes see
 * them: adding (after the publish command authorized and charged), listing
 * and cancelling. Delivery is the Scheduler's.
 */
export class ScheduledMessages {
  readonly #store: ScheduleStore;
  readonly #options: ScheduledMessagesOptions;
  readonly #now: () => number;

  constructor(options: ScheduledMessagesOptions) {
    this.#store = options.store;
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Adds every item or none; 400 for a bad time, 409 for a reused key, 429 beyond a bound. */
  async add(items: readonly ScheduleItem[]): Promise<Scheduled[]> {
    const now = this.#now();
    const { options, defaultTtlSeconds } = this.#options;
    const drafts = items.map((item): ScheduledDraft => {
      const fieldsJson = JSON.stringify(item.fields);
      const ttlMs = Math.round((item.fields.ttl ?? defaultTtlSeconds) * 1000);
      // The log remembers a delivered message's key while it is retained: one gone before a dead
      // claimer's lease ends could be appended twice.
      if (ttlMs < options.leaseMs) {
        throw new HeraldError(
          "bad_message",
          `A scheduled message's "ttl" must be at least ${options.leaseMs / 1000} seconds (schedule.leaseSeconds)`,
        );
      }
      return {
        id: nanoid(),
        mailbox: item.mailbox,
        dueAtMs: resolveDueAt(item.when, now, options.maxDelayMs),
        fieldsJson,
        ttlMs,
        ...(item.idempotencyKey === undefined
          ? {}
          : { idempotencyKey: item.idempotencyKey, fingerprint: scheduleFingerprint(fieldsJson, item.when) }),
      };
    });
    const bounds = { maxPerMailbox: options.maxPendingPerMailbox, maxTotal: options.maxPending };
    const results = await orUnavailable(() => this.#store.add(drafts, bounds));
    const first = results[0];
    if (first?.status === "conflict") throw new HeraldError("idempotency_conflict");
    if (first?.status === "full") {
      throw new HeraldError(
        "too_many_scheduled",
        first.mailbox === undefined
          ? `At most ${options.maxPending} messages may wait to be delivered on this server; retry once some were delivered`
          : `At most ${options.maxPendingPerMailbox} messages may wait to be delivered to "${first.mailbox}"; ` +
              "retry once some were delivered, or cancel some (DELETE /v1/scheduled/{id})",
      );
    }
    const added = drafts.filter((_, i) => results[i]?.status === "scheduled").map((draft) => draft.dueAtMs);
    if (added.length > 0) this.#options.onAdded(Math.min(...added));
    return results.map((result) => {
      if (result.status !== "scheduled" && result.status !== "duplicate") throw new HeraldError("internal");
      return { ...result.entry, duplicate: result.status === "duplicate" };
    });
  }

  /** A mailbox's pending entries, earliest due first, at most `limit`. */
  list(mailbox: string, limit: number): Promise<ScheduledEntry[]> {
    return orUnavailable(() => this.#store.list(mailbox, limit));
  }

  /** A pending entry by id, or undefined (unknown, delivered or cancelled). */
  find(id: string): Promise<ScheduledEntry | undefined> {
    return orUnavailable(() => this.#store.get(id));
  }

  /** Messages waiting in all (every node's, on a shared store). */
  pending(): Promise<number> {
    return orUnavailable(() => this.#store.pending());
  }

  cancel(id: string): Promise<CancelResult> {
    return orUnavailable(() => this.#store.cancel(id, this.#now()));
  }
}
