import type { Cluster, Redis } from "ioredis";
import { nanoid } from "nanoid";
import { getOrCreate } from "../util/get-or-create.js";
import { createSlots, type Slots } from "../util/slots.js";
import {
  type AppendListeners,
  createAppendListeners,
  createListeners,
  type ListenerErrorOption,
} from "./append-listeners.js";
import type {
  AppendItem,
  AppendListener,
  AppendResult,
  LatestRead,
  LogInfo,
  MailboxRead,
  MailboxStore,
  MarkReadResult,
  ReadListener,
  ReadMark,
  ReadState,
  StoredMessage,
  StoreStats,
  StreamPosition,
} from "./mailbox-store.js";
import { CatchUp } from "./redis-catch-up.js";
import {
  closeRedisConnection,
  openRedisConnections,
  type StallWatch,
  watchForStall,
  whenRedisReady,
} from "./redis-connection.js";
import { DEFAULT_REDIS_KEY_PREFIX, RedisKeys } from "./redis-keys.js";
import { RedisReadPositions } from "./redis-reads.js";
import { APPEND_SCRIPT, draftAt, LATEST_SCRIPT, READ_SCRIPT, type ScriptedRedis, STORED } from "./redis-scripts.js";
import { orUnavailable, storeClosed } from "./store-unavailable.js";
import { draftKey, storedMessage } from "./stored-message.js";

export interface RedisStoreOptions extends ListenerErrorOption {
  /** `redis://`, `rediss://` or `redis-cluster://` (see redis-url.ts); a malformed one is a ConfigError. */
  readonly url: string;
  /**
   * Prepended to every key and to the wake-up channel; lets several deployments (or test runs) share one Redis.
   * Must not contain `{` or `}` (a ConfigError; see checkRedisKeyPrefix).
   */
  readonly keyPrefix?: string;
  /** Messages kept per mailbox; the oldest are trimmed beyond it. */
  readonly maxMessagesPerMailbox: number;
  /** How often mailboxes this node reads are compared with Redis, to catch wake-ups pub/sub dropped. */
  readonly checkIntervalMs?: number;
  /** Reads (replays, requests) sent to Redis at once; more wait their turn. */
  readonly maxReadsInFlight?: number;
}

const DEFAULT_CHECK_INTERVAL_MS = 2000;
/**
 * A read is a page of up to 500 messages, and its reply is held until the
 * subscriber has written it. Unbounded, 250 subscribers resuming at once
 * (300 messages of 2 KiB each) took the heap past 200 MiB and blocked the
 * event loop for over a second; eight at a time keep Redis just as busy.
 * Pulls of other nodes' appends (live delivery) do not wait behind them.
 */
const DEFAULT_READS_IN_FLIGHT = 8;
/** How long a mailbox's seq and epoch outlive its last message, so late cursors see "expired", not "epoch". */
const META_GRACE_MS = 7 * 24 * 60 * 60_000;

/**
 * A MailboxStore on Redis for several Herald nodes: see redis-keys.ts and
 * redis-scripts.ts for the layout and docs/redis.md for the whole picture.
 * Cross-node fan-out is a pub/sub wake-up published by the append script
 * itself. For a mailbox this node reads, a wake-up makes the store read the
 * new messages once and hand them to the listeners; for any other, listeners
 * hear only that it moved. Because pub/sub is at-most-once, the mailboxes
 * this node reads are also compared with Redis on a timer (and at once after
 * a reconnect), so a dropped wake-up delays a message by one tick instead of
 * losing it.
 */
export class RedisStore implements MailboxStore {
  readonly #options: RedisStoreOptions;
  readonly #keys: RedisKeys;
  readonly #nodeId = nanoid(10);
  readonly #redis: ScriptedRedis;
  readonly #subscriber: Redis | Cluster;
  readonly #cluster: boolean;
  readonly #listeners: AppendListeners;
  readonly #catchUp: CatchUp;
  readonly #readListeners: ReturnType<typeof createListeners<Parameters<ReadListener>>>;
  readonly #reads: RedisReadPositions;
  readonly #stall: StallWatch;
  readonly #readSlots: Slots;
  #appended = 0;
  #appendedBytes = 0;
  #closed = false;
  readonly #subscribed: Promise<unknown>;
  /** The most recent connection error, for diagnostics; connections retry on their own. */
  lastError: Error | undefined;

  constructor(options: RedisStoreOptions) {
    this.#options = options;
    this.#keys = new RedisKeys(options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX);
    this.#listeners = createAppendListeners(options.onListenerError);
    const connections = openRedisConnections(options.url, `herald-store-${this.#nodeId}`);
    this.#redis = connections.commands as ScriptedRedis;
    this.#subscriber = connections.subscriber;
    this.#cluster = connections.cluster;
    this.#redis.defineCommand("heraldAppend", { lua: APPEND_SCRIPT });
    this.#redis.defineCommand("heraldRead", { lua: READ_SCRIPT, numberOfKeys: 2, readOnly: true });
    this.#redis.defineCommand("heraldLatest", { lua: LATEST_SCRIPT, numberOfKeys: 3, readOnly: true });
    this.#readListeners = createListeners(options.onListenerError);
    this.#reads = new RedisReadPositions(this.#redis, this.#keys, this.#nodeId, this.#readListeners);
    const onError = (error: Error) => {
      this.lastError = error;
    };
    this.#redis.on("error", onError);
    this.#subscriber.on("error", onError);
    this.#subscriber.on("message", (channel: string, payload: string) => this.#onWake(channel, payload));
    this.#catchUp = new CatchUp({
      // Not reads that mark interest: only local readers keep a mailbox tracked.
      read: (mailbox, after, limit) => this.#read(mailbox, after, limit),
      heads: (mailboxes) => this.#heads(mailboxes),
      connected: () => this.ready(),
      emit: (mailbox, messages) => this.#listeners.emit(mailbox, messages),
    });
    this.#catchUp.start(options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS);
    // A reconnected subscriber may have missed wake-ups: compare everything tracked right away.
    this.#subscriber.on("ready", () => setImmediate(() => void this.#catchUp.checkAll()));
    this.#redis.on("ready", () => setImmediate(() => void this.#catchUp.checkAll()));
    // A Redis that stalls with its connection up is not ready either (see watchForStall); checks skipped meanwhile run now.
    this.#stall = watchForStall(this.#redis, () => void this.#catchUp.checkAll());
    this.#readSlots = createSlots(options.maxReadsInFlight ?? DEFAULT_READS_IN_FLIGHT);
    this.#subscribed = this.#subscriber.subscribe(this.#keys.channel, this.#keys.readChannel).catch(onError);
  }

  /** Resolves once connected and subscribed, or after `timeoutMs` (the store then keeps trying). */
  async whenReady(timeoutMs: number): Promise<boolean> {
    await whenRedisReady(this.#redis, timeoutMs, this.#subscribed);
    return this.ready();
  }

  async append(items: readonly AppendItem[]): Promise<AppendResult[]> {
    if (this.#closed) throw storeClosed();
    const results = await orUnavailable(() => this.#appendAll(items));
    const committed = new Map<string, StoredMessage[]>();
    for (const result of results) {
      if (result.status !== "stored") continue;
      const { message } = result;
      this.#appended += 1;
      this.#appendedBytes += message.json.length;
      getOrCreate(committed, message.mailbox, () => []).push(message);
    }
    for (const [mailbox, messages] of committed) {
      const news = this.#catchUp.appended(mailbox, messages);
      if (news.length > 0) this.#listeners.emit(mailbox, news);
    }
    return results;
  }

  async #appendAll(items: readonly AppendItem[]): Promise<AppendResult[]> {
    const byMailbox = new Map<string, AppendItem[]>();
    for (const item of items) getOrCreate(byMailbox, item.mailbox, () => []).push(item);
    if (!this.#cluster || byMailbox.size === 1) return this.#appendCall(items, false);
    // On a Cluster one script reaches one slot: check every mailbox for a conflict first, then
    // append per mailbox. A concurrent reuse of the same key between the two can slip through.
    const groups = [...byMailbox.values()];
    const checks = await Promise.all(groups.map((group) => this.#appendCall(group, true)));
    const conflict = checks.find((check) => check.length > 0);
    if (conflict) return conflict;
    const answers = await Promise.all(groups.map((group) => this.#appendCall(group, false)));
    const queues = new Map(groups.map((group, i) => [group[0]?.mailbox as string, answers[i] as AppendResult[]]));
    return items.map((item) => (queues.get(item.mailbox) as AppendResult[]).shift() as AppendResult);
  }

  /** One run of the append script; a dry run answers [] or the conflict, storing nothing. */
  async #appendCall(items: readonly AppendItem[], dryRun: boolean): Promise<AppendResult[]> {
    const mailboxes: string[] = [];
    const indexOf = new Map<string, number>();
    for (const { mailbox } of items) {
      if (!indexOf.has(mailbox)) indexOf.set(mailbox, mailboxes.push(mailbox));
    }
    const keys: string[] = [];
    const args: (string | number)[] = [
      this.#nodeId,
      Date.now(),
      this.#options.maxMessagesPerMailbox,
      this.#keys.channel,
      META_GRACE_MS,
      dryRun ? "1" : "0",
      mailboxes.length,
    ];
    for (const mailbox of mailboxes) {
      keys.push(...this.#keys.mailbox(mailbox));
      args.push(mailbox, nanoid(10));
    }
    for (const mailbox of mailboxes) keys.push(this.#keys.latest(mailbox));
    args.push(items.length);
    for (const { mailbox, draft } of items) {
      args.push(
        indexOf.get(mailbox) as number,
        draft.id,
        draft.timeMs,
        draft.expiresAtMs,
        draft.fieldsJson,
        draft.idempotencyKey ?? "",
        draft.idempotencyKey === undefined ? "" : (draft.fingerprint ?? ""),
        draftKey(draft) ?? "",
      );
    }
    const reply = (await this.#redis.heraldAppend(keys.length, ...keys, ...args)).map(String);
    if (reply[0] === "conflict") {
      const [, index, epoch, seq] = reply as [string, string, string, string];
      const mailbox = mailboxes[Number(index) - 1] as string;
      return [{ status: "conflict", message: storedMessage(mailbox, epoch, Number(seq), draftAt(reply, 4)) }];
    }
    if (dryRun) return [];
    const results: AppendResult[] = [];
    let at = mailboxes.length;
    for (const { mailbox, draft } of items) {
      const epoch = reply[(indexOf.get(mailbox) as number) - 1] as string;
      const status = Number(reply[at]);
      const seq = Number(reply[at + 1]);
      if (status === STORED) {
        at += 2;
        results.push({ status: "stored", message: storedMessage(mailbox, epoch, seq, draft) });
      } else {
        const original = draftAt(reply, at + 2);
        at += 6;
        results.push({ status: "duplicate", message: storedMessage(mailbox, epoch, seq, original) });
      }
    }
    return results;
  }

  async read(mailbox: string, after: StreamPosition, limit: number): Promise<MailboxRead> {
    const read = await this.#readSlots.run(() => orUnavailable(() => this.#read(mailbox, after, limit)));
    this.#catchUp.touch(mailbox, read.log?.epoch ?? "", read.log?.lastSeq ?? 0);
    return read;
  }

  async #read(mailbox: string, after: StreamPosition, limit: number): Promise<MailboxRead> {
    const [meta, log] = this.#keys.mailbox(mailbox);
    const reply = await this.#redis.heraldRead(meta, log, after.epoch, after.seq, limit, Date.now());
    return logReply(mailbox, reply);
  }

  async latest(mailbox: string, maxKeys: number): Promise<LatestRead> {
    const [meta, log] = this.#keys.mailbox(mailbox);
    const latest = this.#keys.latest(mailbox);
    return logReply(
      mailbox,
      await orUnavailable(() => this.#redis.heraldLatest(meta, log, latest, maxKeys, Date.now())),
    );
  }

  async head(mailbox: string): Promise<LogInfo | undefined> {
    const meta = this.#keys.mailbox(mailbox)[0];
    const [epoch, seq, trimmed] = await orUnavailable(() => this.#redis.hmget(meta, "epoch", "seq", "trimmed"));
    if (epoch === null || epoch === undefined) return undefined;
    return { epoch, lastSeq: Number(seq), trimmedThrough: Number(trimmed) };
  }

  async rememberDelivery(key: string, answer: string, ttlMs: number): Promise<void> {
    if (this.#closed) throw storeClosed();
    const px = Math.max(1, Math.ceil(ttlMs));
    await orUnavailable(() => this.#redis.set(this.#keys.delivery(key), answer, "PX", px));
  }

  async recallDelivery(key: string): Promise<string | undefined> {
    if (this.#closed) throw storeClosed();
    return (await orUnavailable(() => this.#redis.get(this.#keys.delivery(key)))) ?? undefined;
  }

  watch(listener: AppendListener): () => void {
    return this.#listeners.add(listener);
  }

  markRead(mailbox: string, reader: string, mark: ReadMark): Promise<MarkReadResult> {
    if (this.#closed) return Promise.reject(storeClosed());
    return this.#reads.mark(mailbox, reader, mark);
  }

  readState(mailbox: string, reader: string): Promise<ReadState> {
    if (this.#closed) return Promise.reject(storeClosed());
    return this.#reads.state(mailbox, reader);
  }

  watchReads(listener: ReadListener): () => void {
    return this.#readListeners.add(listener);
  }

  ready(): boolean {
    return !this.#closed && this.#redis.status === "ready" && !this.#stall.stalled();
  }

  /**
   * What this node knows without asking Redis: the mailboxes it tracks and what it appended since it
   * started (not reduced by trimming). Redis holds the totals (INFO memory, the keys under the prefix).
   */
  stats(): StoreStats {
    return { mailboxes: this.#catchUp.tracked, messages: this.#appended, bytes: this.#appendedBytes };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#catchUp.stop();
    this.#stall.stop();
    await Promise.all([this.#redis, this.#subscriber].map(closeRedisConnection));
  }

  #onWake(channel: string, payload: string): void {
    if (this.#closed) return;
    if (channel === this.#keys.readChannel) {
      this.#reads.onPublished(payload);
      return;
    }
    if (channel !== this.#keys.channel) return;
    const [node, epoch, seq, mailbox] = payload.split(" ");
    if (node === this.#nodeId || mailbox === undefined) return;
    this.#catchUp.onWake(mailbox, epoch as string, Number(seq));
  }

  async #heads(mailboxes: readonly string[]): Promise<(StreamPosition | null | undefined)[]> {
    // Separate commands, not one pipeline: on a Cluster the mailboxes live on different shards.
    return Promise.all(
      mailboxes.map(async (mailbox) => {
        try {
          const [epoch, seq] = await this.#redis.hmget(this.#keys.mailbox(mailbox)[0], "epoch", "seq");
          return epoch === null || epoch === undefined ? null : { epoch, seq: Number(seq) };
        } catch {
          return undefined;
        }
      }),
    );
  }
}

/** A read or latest script's reply: {} for no mailbox, else the log state and messages of seq, id, t, x, f. */
function logReply(mailbox: string, raw: readonly (string | number)[]): MailboxRead {
  const reply = raw.map(String);
  if (reply.length === 0) return { log: undefined, messages: [] };
  const [epoch, lastSeq, trimmed] = reply as [string, string, string];
  const messages: StoredMessage[] = [];
  for (let i = 3; i < reply.length; i += 5) {
    messages.push(storedMessage(mailbox, epoch, Number(reply[i]), draftAt(reply, i + 1)));
  }
  return { log: { epoch, lastSeq: Number(lastSeq), trimmedThrough: Number(trimmed) }, messages };
}

export function createRedisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options);
}
