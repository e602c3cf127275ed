import { Redis } from "ioredis";
import { nanoid } from "nanoid";
import type {
  AppendItem,
  AppendListener,
  AppendResult,
  LogInfo,
  MailboxRead,
  MailboxStore,
  ReadPosition,
  StoredMessage,
  StoreStats,
} from "./mailbox-store.js";
import { APPEND_SCRIPT, READ_SCRIPT } from "./redis-scripts.js";
import { type MessageDraft, storedMessage } from "./stored-message.js";

export interface RedisStoreOptions {
  readonly url: string;
  /** Prepended to every key and to the wake-up channel; lets several deployments (or test runs) share one Redis. */
  readonly keyPrefix?: string;
  /** Messages kept per mailbox; the oldest are trimmed beyond it. */
  readonly maxMessagesPerMailbox: number;
  /** How often mailboxes this node reads are compared with Redis, to catch wake-ups pub/sub dropped. */
  readonly checkIntervalMs?: number;
}

export const DEFAULT_REDIS_KEY_PREFIX = "herald:";
const DEFAULT_CHECK_INTERVAL_MS = 2000;
/** Mailboxes compared with Redis per check tick (one pipelined round trip). */
const MAX_CHECKS_PER_TICK = 1000;
/** Mailboxes whose interest this node remembers; beyond it the longest-unchecked is forgotten. */
const MAX_TRACKED_MAILBOXES = 50_000;
/** A tracked mailbox not read for this long is probed once with a wake-up, then forgotten if still unread. */
const IDLE_PROBE_MS = 10 * 60_000;
/** How long a mailbox's seq and epoch outlive its last message, so late cursors see "expired", not "epoch". */
const META_GRACE_MS = 7 * 24 * 60 * 60_000;
/** Longest close() waits for QUIT before dropping a connection. */
const QUIT_TIMEOUT_MS = 2000;
/** Messages read per step when fetching other nodes' appends for local listeners. */
const PULL_PAGE_SIZE = 500;
/** A command without an answer for this long fails (the publish becomes a 503) instead of hanging. */
const COMMAND_TIMEOUT_MS = 10_000;

const STORED = 1;

interface Interest {
  epoch: string;
  seq: number;
  touchedAt: number;
  probed: boolean;
}

type ScriptReply = (string | number)[];

interface ScriptedRedis extends Redis {
  heraldAppend(numKeys: number, ...args: (string | number)[]): Promise<ScriptReply>;
  heraldRead(...args: (string | number)[]): Promise<ScriptReply>;
}

function draftOf(id: string, timeMs: string, expiresAtMs: string, fieldsJson: string): MessageDraft {
  return { id, timeMs: Number(timeMs), expiresAtMs: Number(expiresAtMs), fieldsJson };
}

/**
 * A MailboxStore on Redis for several Herald nodes: see redis-scripts.ts for
 * the key layout and docs/redis.md for the whole picture. Cross-node fan-out
 * is a pub/sub wake-up published by the append script itself. For a mailbox
 * this node reads, a wake-up makes the store read the new messages once and
 * hand them to the listeners; for any other, listeners hear only that it
 * moved. Because pub/sub is at-most-once, the mailboxes this node reads are
 * also compared with Redis on a timer (and at once after a reconnect), so a
 * dropped wake-up delays a message by one tick instead of losing it.
 */
export class RedisStore implements MailboxStore {
  readonly #options: RedisStoreOptions;
  readonly #prefix: string;
  readonly #channel: string;
  readonly #nodeId = nanoid(10);
  readonly #redis: ScriptedRedis;
  readonly #subscriber: Redis;
  readonly #listeners = new Set<AppendListener>();
  readonly #interest = new Map<string, Interest>();
  /** Mailboxes being pulled; true when another pull was asked for meanwhile. */
  readonly #pulling = new Map<string, boolean>();
  readonly #timer: NodeJS.Timeout;
  #checking = false;
  #appended = 0;
  #appendedBytes = 0;
  #closed = false;
  #subscribed: Promise<unknown>;
  /** The most recent connection error, for diagnostics; connections retry on their own. */
  lastError: Error | undefined;

  constructor(options: RedisStoreOptions) {
    this.#options = options;
    this.#prefix = options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX;
    if (this.#prefix.includes("{")) throw new Error("the Redis key prefix must not contain '{' (it is the hash tag)");
    this.#channel = `${this.#prefix}wake`;
    const common = {
      // Fail at once while disconnected: a publish must become a 503, never wait or be sent twice.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: COMMAND_TIMEOUT_MS,
    };
    this.#redis = new Redis(options.url, common) as ScriptedRedis;
    this.#redis.defineCommand("heraldAppend", { lua: APPEND_SCRIPT });
    this.#redis.defineCommand("heraldRead", { lua: READ_SCRIPT, numberOfKeys: 2, readOnly: true });
    // The subscriber queues its SUBSCRIBE until connected; ioredis resubscribes after each reconnect.
    this.#subscriber = new Redis(options.url, { autoResubscribe: true });
    const onError = (error: Error) => {
      this.lastError = error;
    };
    this.#redis.on("error", onError);
    this.#subscriber.on("error", onError);
    this.#subscriber.on("message", (channel: string, payload: string) => this.#onWake(channel, payload));
    // A reconnected subscriber may have missed wake-ups: compare everything tracked right away.
    this.#subscriber.on("ready", () => setImmediate(() => void this.#checkAll()));
    this.#redis.on("ready", () => setImmediate(() => void this.#checkAll()));
    this.#subscribed = this.#subscriber.subscribe(this.#channel).catch(onError);
    this.#timer = setInterval(() => void this.#check(), options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Resolves once connected and subscribed, or after `timeoutMs` (the store then keeps trying). */
  async whenReady(timeoutMs: number): Promise<boolean> {
    const connected = new Promise<void>((resolve) => {
      if (this.#redis.status === "ready") resolve();
      else this.#redis.once("ready", () => resolve());
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([Promise.all([connected, this.#subscribed]), timeout]);
    clearTimeout(timer);
    return this.ready();
  }

  async append(items: readonly AppendItem[]): Promise<AppendResult[]> {
    if (this.#closed) throw new Error("store is closed");
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
      this.#channel,
      META_GRACE_MS,
      mailboxes.length,
    ];
    for (const mailbox of mailboxes) {
      keys.push(...this.#keys(mailbox));
      args.push(mailbox, nanoid(10));
    }
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
      );
    }
    const reply = (await this.#redis.heraldAppend(keys.length, ...keys, ...args)).map(String);
    if (reply[0] === "conflict") {
      const [, index, epoch, seq, id, timeMs, expiresAtMs, fieldsJson] = reply as string[];
      const mailbox = mailboxes[Number(index) - 1] as string;
      const draft = draftOf(id as string, timeMs as string, expiresAtMs as string, fieldsJson as string);
      return [{ status: "conflict", message: storedMessage(mailbox, epoch as string, Number(seq), draft) }];
    }
    const results: AppendResult[] = [];
    const committed = new Map<string, StoredMessage[]>();
    let at = mailboxes.length;
    for (const { mailbox, draft } of items) {
      const epoch = reply[(indexOf.get(mailbox) as number) - 1] as string;
      const status = Number(reply[at]);
      const seq = Number(reply[at + 1]);
      if (status === STORED) {
        at += 2;
        const message = storedMessage(mailbox, epoch, seq, draft);
        this.#appended += 1;
        this.#appendedBytes += message.json.length;
        results.push({ status: "stored", message });
        const list = committed.get(mailbox);
        if (list) list.push(message);
        else committed.set(mailbox, [message]);
      } else {
        const original = draftOf(
          reply[at + 2] as string,
          reply[at + 3] as string,
          reply[at + 4] as string,
          reply[at + 5] as string,
        );
        at += 6;
        results.push({ status: "duplicate", message: storedMessage(mailbox, epoch, seq, original) });
      }
    }
    for (const [mailbox, messages] of committed) {
      const last = messages[messages.length - 1] as StoredMessage;
      this.#advance(mailbox, last.epoch, last.seq);
      for (const listener of this.#listeners) listener(mailbox, messages);
    }
    return results;
  }

  async read(mailbox: string, position: ReadPosition, limit: number): Promise<MailboxRead> {
    const read = await this.#read(mailbox, position, limit);
    this.#touch(mailbox, read.log?.epoch ?? "", read.log?.lastSeq ?? 0);
    return read;
  }

  async #read(mailbox: string, position: ReadPosition, limit: number): Promise<MailboxRead> {
    const [meta, log] = this.#keys(mailbox);
    const reply = (await this.#redis.heraldRead(meta, log, position.epoch, position.afterSeq, limit, Date.now())).map(
      String,
    );
    if (reply.length === 0) return { log: undefined, messages: [] };
    const [epoch, lastSeq, trimmed] = reply as [string, string, string];
    const messages: StoredMessage[] = [];
    for (let i = 3; i < reply.length; i += 5) {
      const draft = draftOf(
        reply[i + 1] as string,
        reply[i + 2] as string,
        reply[i + 3] as string,
        reply[i + 4] as string,
      );
      messages.push(storedMessage(mailbox, epoch, Number(reply[i]), draft));
    }
    return { log: { epoch, lastSeq: Number(lastSeq), trimmedThrough: Number(trimmed) }, messages };
  }

  async head(mailbox: string): Promise<LogInfo | undefined> {
    const [epoch, seq, trimmed] = await this.#redis.hmget(this.#keys(mailbox)[0], "epoch", "seq", "trimmed");
    if (epoch === null || epoch === undefined) return undefined;
    return { epoch, lastSeq: Number(seq), trimmedThrough: Number(trimmed) };
  }

  watch(listener: AppendListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  ready(): boolean {
    return !this.#closed && this.#redis.status === "ready";
  }

  /**
   * What this node knows without asking Redis: the mailboxes it tracks and what it appended since it
   * started (not reduced by trimming). Redis holds the totals (INFO memory, the keys under the prefix).
   */
  stats(): StoreStats {
    return { mailboxes: this.#interest.size, messages: this.#appended, bytes: this.#appendedBytes };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await Promise.all(
      [this.#redis, this.#subscriber].map(async (connection) => {
        if (connection.status === "ready") {
          // QUIT lets replies in flight arrive; a Redis that stops answering must not hold up shutdown.
          let timer: NodeJS.Timeout | undefined;
          const late = new Promise((resolve) => {
            timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
          });
          await Promise.race([connection.quit().catch(() => {}), late]);
          clearTimeout(timer);
        }
        connection.disconnect();
      }),
    );
  }

  #keys(mailbox: string): [meta: string, log: string, idem: string] {
    const tag = `${this.#prefix}{${mailbox}}`;
    return [`${tag}:meta`, `${tag}:log`, `${tag}:idem`];
  }

  #emit(mailbox: string): void {
    for (const listener of this.#listeners) listener(mailbox, undefined);
  }

  /** Reads mark interest: a mailbox someone here reads is one whose wake-ups must not be missed. */
  #touch(mailbox: string, epoch: string, seq: number): void {
    const interest = this.#interest.get(mailbox);
    if (interest) {
      interest.touchedAt = Date.now();
      interest.probed = false;
      return;
    }
    this.#interest.set(mailbox, { epoch, seq, touchedAt: Date.now(), probed: false });
    if (this.#interest.size > MAX_TRACKED_MAILBOXES) {
      this.#interest.delete(this.#interest.keys().next().value as string);
    }
  }

  /** Records that listeners were told about the log up to (epoch, seq). */
  #advance(mailbox: string, epoch: string, seq: number): void {
    const interest = this.#interest.get(mailbox);
    if (!interest || (interest.epoch === epoch && interest.seq >= seq)) return;
    interest.epoch = epoch;
    interest.seq = seq;
  }

  #onWake(channel: string, payload: string): void {
    if (channel !== this.#channel || this.#closed) return;
    const [node, epoch, seq, mailbox] = payload.split(" ");
    if (node === this.#nodeId || mailbox === undefined) return;
    const interest = this.#interest.get(mailbox);
    // Untracked: nobody here read it lately; whoever cares re-reads (and so starts tracking it).
    if (!interest) this.#emit(mailbox);
    else if (interest.epoch !== epoch || interest.seq < Number(seq)) this.#pull(mailbox);
  }

  /**
   * Reads what other nodes appended to a tracked mailbox once for the whole
   * node and hands it to the listeners like a local append, so a thousand
   * local subscribers cost one read, not a thousand. One pull per mailbox at
   * a time keeps the listeners' view in seq order.
   */
  #pull(mailbox: string): void {
    if (this.#pulling.has(mailbox)) {
      this.#pulling.set(mailbox, true);
      return;
    }
    this.#pulling.set(mailbox, false);
    void (async () => {
      try {
        let more = true;
        while (more || this.#pulling.get(mailbox)) {
          this.#pulling.set(mailbox, false);
          more = await this.#pullOnce(mailbox);
        }
      } finally {
        this.#pulling.delete(mailbox);
      }
    })();
  }

  /** One page of a pull; true when the log holds more after it. */
  async #pullOnce(mailbox: string): Promise<boolean> {
    const interest = this.#interest.get(mailbox);
    if (!interest || this.#closed) return false;
    const { epoch, seq } = interest;
    let read: MailboxRead;
    try {
      // Not a read that marks interest: only local readers keep a mailbox tracked.
      read = await this.#read(mailbox, { epoch, afterSeq: seq }, PULL_PAGE_SIZE);
    } catch {
      this.#emit(mailbox);
      return false;
    }
    const { log, messages } = read;
    const first = messages[0];
    const last = messages[messages.length - 1];
    const contiguous =
      log !== undefined &&
      first !== undefined &&
      ((first.epoch === epoch && first.seq === seq + 1) || (seq === 0 && first.seq === 1));
    if (!contiguous || !last) {
      // Nothing new, or a hole (expiry, trimming, a new epoch): the listeners' own re-read reports it.
      const moved = log ? log.epoch !== epoch || log.lastSeq > seq : seq > 0;
      if (!moved) return false;
      interest.epoch = log?.epoch ?? "";
      interest.seq = log?.lastSeq ?? 0;
      this.#emit(mailbox);
      return false;
    }
    this.#advance(mailbox, last.epoch, last.seq);
    for (const listener of this.#listeners) listener(mailbox, messages);
    return (log?.lastSeq ?? 0) > last.seq;
  }

  async #checkAll(): Promise<void> {
    for (let rounds = Math.ceil(this.#interest.size / MAX_CHECKS_PER_TICK); rounds > 0; rounds--) {
      if (!(await this.#check())) return;
    }
  }

  /** Compares up to MAX_CHECKS_PER_TICK tracked mailboxes with Redis, round-robin; false when it could not. */
  async #check(): Promise<boolean> {
    if (this.#checking || this.#closed || this.#redis.status !== "ready" || this.#interest.size === 0) return false;
    this.#checking = true;
    try {
      const now = Date.now();
      const batch: string[] = [];
      const probes: string[] = [];
      for (const [mailbox, interest] of this.#interest) {
        if (batch.length + probes.length >= MAX_CHECKS_PER_TICK) break;
        if (now - interest.touchedAt > IDLE_PROBE_MS) {
          if (interest.probed) {
            this.#interest.delete(mailbox);
            continue;
          }
          interest.probed = true;
          probes.push(mailbox);
        } else {
          batch.push(mailbox);
        }
      }
      // Checked entries move to the back, so the next tick starts where this one stopped.
      for (const mailbox of [...batch, ...probes]) {
        const interest = this.#interest.get(mailbox) as Interest;
        this.#interest.delete(mailbox);
        this.#interest.set(mailbox, interest);
      }
      const pipeline = this.#redis.pipeline();
      for (const mailbox of batch) pipeline.hmget(this.#keys(mailbox)[0], "epoch", "seq");
      const replies = (await pipeline.exec()) ?? [];
      batch.forEach((mailbox, i) => {
        const [error, value] = replies[i] ?? [new Error("no reply")];
        if (error) return;
        const [epoch, seq] = value as (string | null)[];
        const interest = this.#interest.get(mailbox);
        if (!interest) return;
        const moved =
          epoch === null || epoch === undefined
            ? interest.seq > 0
            : epoch !== interest.epoch || Number(seq) > interest.seq;
        if (moved) this.#pull(mailbox);
      });
      for (const mailbox of probes) this.#emit(mailbox);
      return true;
    } catch {
      return false;
    } finally {
      this.#checking = false;
    }
  }
}

export function createRedisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options);
}
