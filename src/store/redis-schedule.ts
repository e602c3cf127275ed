import type { Cluster, Redis } from "ioredis";
import { nanoid } from "nanoid";
import { closeRedisConnection, openRedisCommands, whenRedisReady } from "./redis-connection.js";
import { DEFAULT_REDIS_KEY_PREFIX, RedisKeys } from "./redis-keys.js";
import { ADD_SCRIPT, CANCEL_SCRIPT, CLAIM_SCRIPT, COMPLETE_SCRIPT, LIST_SCRIPT } from "./redis-schedule-scripts.js";
import type {
  CancelResult,
  CompletedDelivery,
  ScheduleAddResult,
  ScheduleBounds,
  ScheduledDraft,
  ScheduledEntry,
  ScheduledOriginal,
  ScheduleStore,
} from "./schedule-store.js";
import { orUnavailable, storeClosed } from "./store-unavailable.js";

export interface RedisScheduleOptions {
  /** As for the Redis store (see redis-url.ts): `redis://`, `rediss://` or `redis-cluster://`. */
  readonly url: string;
  /** As for the Redis store; nodes sharing scheduled publishes share the prefix. */
  readonly keyPrefix?: string;
}

type Reply = string[];

type ScheduleRedis = (Redis | Cluster) & {
  heraldScheduleAdd(numKeys: number, ...args: (string | number)[]): Promise<Reply>;
  heraldScheduleClaim(...args: (string | number)[]): Promise<Reply>;
  heraldScheduleComplete(numKeys: number, ...args: (string | number)[]): Promise<number>;
  heraldScheduleCancel(...args: (string | number)[]): Promise<CancelResult>;
  heraldScheduleList(...args: (string | number)[]): Promise<Reply>;
};

/** An entries value: "<member>\n<entry JSON>". */
function entryOf(value: string): ScheduledEntry {
  return JSON.parse(value.slice(value.indexOf("\n") + 1)) as ScheduledEntry;
}

/** A key record: "<fingerprint>\n<id>\n<dueAtMs>". */
function originalOf(record: string, mailbox: string): ScheduledOriginal {
  const [, id, dueAtMs] = record.split("\n") as [string, string, string];
  return { id, mailbox, dueAtMs: Number(dueAtMs) };
}

/**
 * Scheduled publishes in Redis, shared by every node on the same prefix: each
 * node's scheduler claims due entries with one script (a lease on each), so an
 * entry is handed to one node at a time, and one whose node died is claimed
 * again by another once the lease ends. Layout: redis-schedule-scripts.ts.
 */
export class RedisSchedule implements ScheduleStore {
  readonly #keys: RedisKeys;
  readonly #redis: ScheduleRedis;
  readonly #queue: string;
  readonly #entries: string;
  readonly #order: string;
  #closed = false;
  /** The most recent connection error, for diagnostics; the connection retries on its own. */
  lastError: Error | undefined;

  constructor(options: RedisScheduleOptions) {
    this.#keys = new RedisKeys(options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX);
    [this.#queue, this.#entries, this.#order] = this.#keys.schedule();
    this.#redis = openRedisCommands(options.url, `herald-schedule-${nanoid(10)}`) as ScheduleRedis;
    this.#redis.on("error", (error: Error) => {
      this.lastError = error;
    });
    this.#redis.defineCommand("heraldScheduleAdd", { lua: ADD_SCRIPT });
    this.#redis.defineCommand("heraldScheduleClaim", { lua: CLAIM_SCRIPT, numberOfKeys: 2 });
    this.#redis.defineCommand("heraldScheduleComplete", { lua: COMPLETE_SCRIPT });
    this.#redis.defineCommand("heraldScheduleCancel", { lua: CANCEL_SCRIPT, numberOfKeys: 4 });
    this.#redis.defineCommand("heraldScheduleList", { lua: LIST_SCRIPT, numberOfKeys: 2, readOnly: true });
  }

  /** Resolves once connected, or after `timeoutMs` (calls fail until then; it keeps trying). */
  whenReady(timeoutMs: number): Promise<boolean> {
    return whenRedisReady(this.#redis, timeoutMs);
  }

  async add(drafts: readonly ScheduledDraft[], bounds: ScheduleBounds): Promise<ScheduleAddResult[]> {
    const keys = [this.#queue, this.#entries, this.#order];
    const args: (string | number)[] = [bounds.maxPerMailbox, bounds.maxTotal, drafts.length];
    for (const draft of drafts) {
      keys.push(this.#keys.scheduledIn(draft.mailbox), this.#recordKey(draft));
      args.push(
        draft.id,
        draft.dueAtMs,
        JSON.stringify(draft),
        draft.fingerprint ?? "",
        draft.idempotencyKey === undefined ? "0" : "1",
        draft.mailbox,
      );
    }
    const reply = await this.#call(() => this.#redis.heraldScheduleAdd(keys.length, ...keys, ...args));
    if (reply[0] === "full") return [{ status: "full", mailbox: reply[1] || undefined }];
    if (reply[0] === "conflict") {
      const mailbox = drafts[Number(reply[2]) - 1]?.mailbox as string;
      return [{ status: "conflict", entry: originalOf(reply[1] as string, mailbox) }];
    }
    return drafts.map((draft, i) => ({
      status: reply[2 * i] === "duplicate" ? "duplicate" : "scheduled",
      entry: originalOf(reply[2 * i + 1] as string, draft.mailbox),
    }));
  }

  async list(mailbox: string, limit: number): Promise<ScheduledEntry[]> {
    const reply = await this.#call(() =>
      this.#redis.heraldScheduleList(this.#keys.scheduledIn(mailbox), this.#entries, limit),
    );
    return reply.map(entryOf);
  }

  async get(id: string): Promise<ScheduledEntry | undefined> {
    const value = await this.#call(() => this.#redis.hget(this.#entries, id));
    return value === null ? undefined : entryOf(value);
  }

  async cancel(id: string, nowMs: number): Promise<CancelResult> {
    const entry = await this.get(id);
    if (entry === undefined) return "missing";
    const keys = [this.#queue, this.#entries, this.#keys.scheduledIn(entry.mailbox), this.#recordKey(entry)];
    const hasKey = entry.idempotencyKey === undefined ? "0" : "1";
    return this.#call(() => this.#redis.heraldScheduleCancel(...keys, id, nowMs, entry.dueAtMs, hasKey));
  }

  async claim(nowMs: number, leaseUntilMs: number, max: number): Promise<ScheduledEntry[]> {
    const reply = await this.#call(() =>
      this.#redis.heraldScheduleClaim(this.#queue, this.#entries, nowMs, leaseUntilMs, max),
    );
    return reply.map(entryOf);
  }

  async complete(done: readonly CompletedDelivery[]): Promise<void> {
    if (done.length === 0) return;
    const keys = [this.#queue, this.#entries];
    const args: (string | number)[] = [done.length];
    for (const { entry, expiresAtMs } of done) {
      keys.push(this.#keys.scheduledIn(entry.mailbox), this.#recordKey(entry));
      args.push(entry.id, entry.idempotencyKey === undefined ? "0" : "1", expiresAtMs ?? "");
    }
    await this.#call(() => this.#redis.heraldScheduleComplete(keys.length, ...keys, ...args));
  }

  async nextDueAt(): Promise<number | undefined> {
    const [, score] = await this.#call(() => this.#redis.zrange(this.#queue, 0, 0, "WITHSCORES"));
    return score === undefined ? undefined : Number(score);
  }

  pending(): Promise<number> {
    return this.#call(() => this.#redis.hlen(this.#entries));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await closeRedisConnection(this.#redis);
  }

  /** The entry's key record, or the queue (never read as one) when it has no key. */
  #recordKey(entry: ScheduledDraft): string {
    return entry.idempotencyKey === undefined
      ? this.#queue
      : this.#keys.scheduleKey(entry.mailbox, entry.idempotencyKey);
  }

  #call<T>(work: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(storeClosed());
    return orUnavailable(work);
  }
}

export function createRedisSchedule(options: RedisScheduleOptions): RedisSchedule {
  return new RedisSchedule(options);
}
