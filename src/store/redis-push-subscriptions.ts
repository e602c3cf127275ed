import type { Cluster, Redis } from "ioredis";
import { nanoid } from "nanoid";
import type {
  PushSaveResult,
  PushSubscription,
  PushSubscriptionBounds,
  PushSubscriptionDraft,
  PushSubscriptionStore,
  PushTarget,
} from "./push-subscription-store.js";
import { closeRedisConnection, openRedisCommands, whenRedisReady } from "./redis-connection.js";
import { checkRedisKeyPrefix, DEFAULT_REDIS_KEY_PREFIX } from "./redis-keys.js";
import { REMOVE_SCRIPT, SAVE_SCRIPT } from "./redis-push-scripts.js";
import { orUnavailable, storeClosed, storeUnavailable } from "./store-unavailable.js";

export interface RedisPushSubscriptionsOptions {
  /** As for the Redis store (see redis-url.ts): `redis://`, `rediss://` or `redis-cluster://`. */
  readonly url: string;
  /** As for the Redis store; nodes sharing push subscriptions share the prefix. */
  readonly keyPrefix?: string;
}

type PushRedis = (Redis | Cluster) & {
  heraldPushSave(numKeys: number, ...args: (string | number)[]): Promise<string[]>;
  heraldPushRemove(numKeys: number, ...args: (string | number)[]): Promise<number>;
};

/** A target as the targets hash keeps it: with its expiry, for sending to leave out expired ones. */
interface StoredTarget extends PushTarget {
  readonly expiresAtMs: number;
}

/** Stale answers a save or remove takes before giving up: each one means another node's change won. */
const MAX_ATTEMPTS = 32;

/**
 * Push subscriptions in Redis, shared by every node on the same prefix; a save or remove is one
 * script, so bounds hold across nodes. Layout: redis-push-scripts.ts.
 */
export class RedisPushSubscriptions implements PushSubscriptionStore {
  readonly #redis: PushRedis;
  readonly #tag: string;
  readonly #subscriptions: string;
  readonly #targets: string;
  readonly #endpoints: string;
  readonly #expiry: string;
  #closed = false;
  /** The most recent connection error, for diagnostics; the connection retries on its own. */
  lastError: Error | undefined;

  constructor(options: RedisPushSubscriptionsOptions) {
    const prefix = options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX;
    checkRedisKeyPrefix(prefix);
    // `#` is in no mailbox name, so no mailbox's own `{name}` tag can share this one.
    this.#tag = `${prefix}{#push}`;
    this.#subscriptions = `${this.#tag}:subscriptions`;
    this.#targets = `${this.#tag}:targets`;
    this.#endpoints = `${this.#tag}:endpoints`;
    this.#expiry = `${this.#tag}:expiry`;
    this.#redis = openRedisCommands(options.url, `herald-push-${nanoid(10)}`) as PushRedis;
    this.#redis.on("error", (error: Error) => {
      this.lastError = error;
    });
    this.#redis.defineCommand("heraldPushSave", { lua: SAVE_SCRIPT });
    this.#redis.defineCommand("heraldPushRemove", { lua: REMOVE_SCRIPT });
  }

  /** Resolves once connected, or after `timeoutMs` (calls fail until then; it keeps trying). */
  whenReady(timeoutMs: number): Promise<boolean> {
    return whenRedisReady(this.#redis, timeoutMs);
  }

  async save(draft: PushSubscriptionDraft, bounds: PushSubscriptionBounds, nowMs: number): Promise<PushSaveResult> {
    // Most saves are of a new endpoint: try that first, and learn the record it replaces from a stale answer.
    let record = "";
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const previous = record === "" ? undefined : (JSON.parse(record) as PushSubscription);
      const updating = previous?.owner === draft.owner;
      const subscription: PushSubscription = {
        id: updating ? previous.id : nanoid(),
        endpoint: draft.endpoint,
        keys: { p256dh: draft.keys.p256dh, auth: draft.keys.auth },
        mailboxes: [...draft.mailboxes],
        owner: draft.owner,
        expiresAtMs: draft.expiresAtMs,
        createdAtMs: updating ? previous.createdAtMs : nowMs,
        updatedAtMs: nowMs,
      };
      const dropped = previous?.mailboxes.filter((mailbox) => !draft.mailboxes.includes(mailbox)) ?? [];
      const keys = [
        this.#subscriptions,
        this.#targets,
        this.#endpoints,
        this.#expiry,
        this.#owner(draft.owner),
        this.#owner(previous?.owner ?? draft.owner),
        ...[...draft.mailboxes, ...dropped].map((mailbox) => this.#mailbox(mailbox)),
      ];
      const args = [bounds.maxPerOwner, bounds.maxTotal, record, previous?.id ?? "", subscription.id, draft.endpoint];
      const { id, endpoint, keys: pushKeys, expiresAtMs } = subscription;
      const target: StoredTarget = { id, endpoint, keys: pushKeys, expiresAtMs };
      args.push(JSON.stringify(subscription), draft.mailboxes.length, JSON.stringify(target), expiresAtMs, nowMs);
      const [status, detail] = await this.#call(() => this.#redis.heraldPushSave(keys.length, ...keys, ...args));
      if (status === "stale") record = detail ?? "";
      else if (status === "full") return { status: "full", bound: detail === "owner" ? "owner" : "total" };
      else if (status === "updated") return { status: "updated", subscription };
      else return { status: "created", subscription, replaced: previous !== undefined };
    }
    throw tooContended();
  }

  async get(id: string): Promise<PushSubscription | undefined> {
    const record = await this.#call(() => this.#redis.hget(this.#subscriptions, id));
    return record === null ? undefined : (JSON.parse(record) as PushSubscription);
  }

  async remove(id: string, endpoint?: string): Promise<boolean> {
    // An id's endpoint never changes (a re-save elsewhere gets a new id), so this needs no script.
    return this.#removeIf(id, (subscription) => endpoint === undefined || subscription.endpoint === endpoint);
  }

  async targets(mailbox: string, nowMs: number): Promise<PushTarget[]> {
    const ids = await this.#call(() => this.#redis.smembers(this.#mailbox(mailbox)));
    if (ids.length === 0) return [];
    const stored = await this.#call(() => this.#redis.hmget(this.#targets, ...ids));
    // Between the two reads one may have been removed (null), or re-saved: its keys and expiry are then
    // the newest for the same endpoint, as good as reading both before the re-save.
    const targets: PushTarget[] = [];
    for (const json of stored) {
      if (json === null) continue;
      const { id, endpoint, keys, expiresAtMs } = JSON.parse(json) as StoredTarget;
      if (expiresAtMs > nowMs) targets.push({ id, endpoint, keys });
    }
    return targets;
  }

  async prune(nowMs: number, max: number): Promise<number> {
    if (max <= 0) return this.#call(async () => 0);
    const ids = await this.#call(() => this.#redis.zrangebyscore(this.#expiry, "-inf", nowMs, "LIMIT", 0, max));
    let removed = 0;
    // Each one only while its record is still expired: one renewed since (same id, same endpoint) stays.
    for (const id of ids) {
      if (await this.#removeIf(id, (subscription) => subscription.expiresAtMs <= nowMs)) removed++;
    }
    // An id left in the expiry set without its record (none of the scripts leaves one, but one would stop
    // every later prune at the head of the set) is dropped from it.
    const orphans = ids.length === 0 ? [] : await this.#call(() => this.#redis.hmget(this.#subscriptions, ...ids));
    const missing = ids.filter((_, index) => orphans[index] === null);
    if (missing.length > 0) await this.#call(() => this.#redis.zrem(this.#expiry, ...missing));
    return removed;
  }

  /** Removes `id` while its record, as read, passes `accept`; the script refuses a record changed since. */
  async #removeIf(id: string, accept: (subscription: PushSubscription) => boolean): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const record = await this.#call(() => this.#redis.hget(this.#subscriptions, id));
      if (record === null) return false;
      const subscription = JSON.parse(record) as PushSubscription;
      if (!accept(subscription)) return false;
      const keys = [
        this.#subscriptions,
        this.#targets,
        this.#endpoints,
        this.#expiry,
        this.#owner(subscription.owner),
        ...subscription.mailboxes.map((mailbox) => this.#mailbox(mailbox)),
      ];
      const removed = await this.#call(() =>
        this.#redis.heraldPushRemove(keys.length, ...keys, id, record, subscription.endpoint),
      );
      if (removed >= 0) return removed === 1;
    }
    throw tooContended();
  }

  count(): Promise<number> {
    return this.#call(() => this.#redis.hlen(this.#subscriptions));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await closeRedisConnection(this.#redis);
  }

  #mailbox(mailbox: string): string {
    return `${this.#tag}:mailbox:${mailbox}`;
  }

  #owner(owner: string): string {
    return `${this.#tag}:owner:${owner}`;
  }

  #call<T>(work: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(storeClosed());
    return orUnavailable(work);
  }
}

function tooContended(): Error {
  return storeUnavailable(undefined, new Error(`push subscription changed under ${MAX_ATTEMPTS} attempts in a row`));
}

export function createRedisPushSubscriptions(options: RedisPushSubscriptionsOptions): RedisPushSubscriptions {
  return new RedisPushSubscriptions(options);
}
