import type { Cluster, Redis } from "ioredis";
import { nanoid } from "nanoid";
import { createListeners, type ListenerErrorOption, type Listeners } from "./append-listeners.js";
import {
  memberOf,
  type NodePresence,
  type PresenceChange,
  type PresenceListener,
  type PresenceSnapshot,
  type PresenceStore,
} from "./presence-store.js";
import { closeRedisConnection, openRedisConnections, whenRedisReady } from "./redis-connection.js";
import { DEFAULT_REDIS_KEY_PREFIX, RedisKeys } from "./redis-keys.js";
import { orUnavailable } from "./store-unavailable.js";

export interface RedisPresenceOptions extends ListenerErrorOption {
  /** As for the Redis store (see redis-url.ts). */
  readonly url: string;
  readonly keyPrefix?: string;
  /** A node that has not beaten for this long is taken for dead and its readers are withdrawn. */
  readonly nodeTimeoutMs?: number;
}

/** Dead nodes' readers are gone within this plus one beat (a quarter of it). */
export const DEFAULT_PRESENCE_NODE_TIMEOUT_MS = 20_000;
/** An emptied mailbox's presence hash (only its version left) lingers this long. */
const IDLE_HASH_TTL_MS = 24 * 60 * 60_000;

/**
 * KEYS: the mailbox's presence hash. ARGV: node, sub, node presence JSON ('' removes), channel, mailbox,
 * idle ttl. Stamps the change with a version (Redis time in µs, above the previous one) and publishes
 * [mailbox, version, sub, the reader's per-node JSON or ''] as JSON.
 */
const REPORT_SCRIPT = `
local raw = redis.call('HGET', KEYS[1], ARGV[2])
local nodes = {}
if raw then nodes = cjson.decode(raw) end
if ARGV[3] == '' then nodes[ARGV[1]] = nil else nodes[ARGV[1]] = cjson.decode(ARGV[3]) end
local t = redis.call('TIME')
local v = tonumber(t[1]) * 1000000 + tonumber(t[2])
local previous = tonumber(redis.call('HGET', KEYS[1], '#v') or '0')
if v <= previous then v = previous + 1 end
local version = string.format('%.0f', v)
redis.call('HSET', KEYS[1], '#v', version)
local out = ''
if next(nodes) == nil then redis.call('HDEL', KEYS[1], ARGV[2]) else
  out = cjson.encode(nodes)
  redis.call('HSET', KEYS[1], ARGV[2], out)
end
if redis.call('HLEN', KEYS[1]) <= 1 then redis.call('PEXPIRE', KEYS[1], ARGV[6]) else redis.call('PERSIST', KEYS[1]) end
redis.call('PUBLISH', ARGV[4], cjson.encode({ ARGV[5], version, ARGV[2], out }))
return version
`;

interface Reported {
  readonly mailbox: string;
  readonly sub: string;
  readonly presence: NodePresence | undefined;
}

type PresenceRedis = (Redis | Cluster) & { heraldPresence(...args: (string | number)[]): Promise<string> };
type WireNodes = Record<string, { c: number; s: number; i?: string }>;

/**
 * Presence over Redis for many nodes. Each node writes its own part of each
 * reader's entry and beats in a sorted set; a node that finds another's beat
 * older than the timeout removes it (one wins the ZREM) and withdraws its
 * readers, which every node hears as changes. Until then, readers of nodes
 * known to be late are left out of what this node reports.
 */
export class RedisPresence implements PresenceStore {
  /** Names this node in Redis: its beat, its part of each entry, its connections (`herald-presence-<id>`). */
  readonly nodeId = nanoid(10);
  readonly #keys: RedisKeys;
  readonly #redis: PresenceRedis;
  readonly #subscriber: Redis | Cluster;
  readonly #listeners: Listeners<[PresenceChange]>;
  readonly #timeoutMs: number;
  readonly #timer: NodeJS.Timeout;
  /**
   * What this node reported, by "mailbox\nsub"; an undefined presence is a
   * withdrawal not yet written (Redis was away), kept until one succeeds.
   */
  readonly #reported = new Map<string, Reported>();
  readonly #resyncListeners: Listeners<[]>;
  #republishing: Promise<void> | undefined;
  /** Every node's last beat as last read. */
  #beats = new Map<string, number>();
  #beaten = false;
  #closed = false;
  readonly #subscribed: Promise<unknown>;

  constructor(options: RedisPresenceOptions) {
    this.#keys = new RedisKeys(options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX);
    this.#listeners = createListeners(options.onListenerError);
    this.#resyncListeners = createListeners(options.onListenerError);
    this.#timeoutMs = options.nodeTimeoutMs ?? DEFAULT_PRESENCE_NODE_TIMEOUT_MS;
    const connections = openRedisConnections(options.url, `herald-presence-${this.nodeId}`);
    this.#redis = connections.commands as PresenceRedis;
    this.#subscriber = connections.subscriber;
    this.#redis.defineCommand("heraldPresence", { lua: REPORT_SCRIPT, numberOfKeys: 1 });
    const ignore = () => {};
    this.#redis.on("error", ignore);
    this.#subscriber.on("error", ignore);
    this.#subscriber.on("message", (channel: string, payload: string) => {
      if (channel === this.#keys.presenceChannel) this.#onChange(payload);
    });
    this.#subscribed = this.#subscriber.subscribe(this.#keys.presenceChannel).catch(ignore);
    // Pub/sub drops what is published while the subscriber reconnects: watchers must look again.
    let subscribedBefore = false;
    this.#subscriber.on("ready", () => {
      if (subscribedBefore) setImmediate(() => this.#resyncListeners.emit());
      subscribedBefore = true;
    });
    // Beat as soon as connected (a node that dies young must be found too); after Redis was away,
    // reports may have been lost: say them again.
    let connectedBefore = false;
    this.#redis.on("ready", () => {
      const reconnected = connectedBefore;
      connectedBefore = true;
      void this.#beat()
        .then(() => (reconnected ? this.#republish() : undefined))
        .catch(ignore);
    });
    this.#timer = setInterval(() => void this.#beat().catch(ignore), Math.max(50, this.#timeoutMs / 4));
    this.#timer.unref();
  }

  /** Resolves once connected and subscribed, or after `timeoutMs` (reports fail until then; it keeps trying). */
  whenReady(timeoutMs: number): Promise<boolean> {
    return whenRedisReady(this.#redis, timeoutMs, this.#subscribed);
  }

  async report(mailbox: string, sub: string, presence: NodePresence | undefined): Promise<void> {
    const key = `${mailbox}\n${sub}`;
    const reported = { mailbox, sub, presence };
    this.#reported.set(key, reported);
    await orUnavailable(() => this.#write(this.nodeId, mailbox, sub, presence));
    if (presence === undefined && this.#reported.get(key) === reported) this.#reported.delete(key);
  }

  async snapshot(mailbox: string): Promise<PresenceSnapshot> {
    const hash = await orUnavailable(() => this.#redis.hgetall(this.#keys.presence(mailbox)));
    const members = [];
    for (const [sub, value] of Object.entries(hash)) {
      if (sub === "#v") continue;
      const member = memberOf(sub, this.#liveNodes(value));
      if (member) members.push(member);
    }
    return { version: Number(hash["#v"] ?? 0), members };
  }

  watch(listener: PresenceListener): () => void {
    return this.#listeners.add(listener);
  }

  onResync(listener: () => void): () => void {
    return this.#resyncListeners.add(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    // What Redis says this node reported, besides what it remembers: a write that failed may have landed.
    const members = new Set(await this.#redis.smembers(this.#keys.presenceNode(this.nodeId)).catch(() => []));
    for (const key of this.#reported.keys()) members.add(key);
    this.#reported.clear();
    await Promise.all([...members].map((member) => this.#withdraw(this.nodeId, member).catch(() => {})));
    await Promise.all([
      this.#redis.zrem(this.#keys.presenceNodes, this.nodeId).catch(() => {}),
      this.#redis.del(this.#keys.presenceNode(this.nodeId)).catch(() => {}),
    ]);
    await Promise.all([this.#redis, this.#subscriber].map(closeRedisConnection));
  }

  async #write(node: string, mailbox: string, sub: string, presence: NodePresence | undefined): Promise<void> {
    const entry =
      presence === undefined
        ? ""
        : JSON.stringify({
            c: presence.connections,
            s: presence.sinceMs,
            ...(presence.info ? { i: presence.info } : {}),
          });
    const member = `${mailbox}\n${sub}`;
    const args = [node, sub, entry, this.#keys.presenceChannel, mailbox, IDLE_HASH_TTL_MS];
    const nodeSet = this.#keys.presenceNode(node);
    // The node's set is listed before the entry is written and unlisted after it is removed, so a node
    // that dies between the two leaves at most a listing with nothing behind it, never an orphan entry.
    // All are sent before any is awaited: a connection keeps the order of what it sends, so writes of one
    // reader issued one after the other land in that order.
    const sent: Promise<unknown>[] = [];
    if (presence !== undefined) sent.push(this.#redis.sadd(nodeSet, member));
    sent.push(this.#redis.heraldPresence(this.#keys.presence(mailbox), ...args));
    if (presence === undefined) sent.push(this.#redis.srem(nodeSet, member));
    await Promise.all(sent);
  }

  /** Removes a node's entry named by its node-set member ("mailbox\nsub"). */
  async #withdraw(node: string, member: string): Promise<void> {
    const split = member.indexOf("\n");
    if (split > 0) await this.#write(node, member.slice(0, split), member.slice(split + 1), undefined);
  }

  #onChange(payload: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      return;
    }
    if (!Array.isArray(parsed) || parsed.length !== 4) return;
    const [mailbox, version, sub, value] = parsed.map(String) as [string, string, string, string];
    this.#listeners.emit({ mailbox, version: Number(version), sub, member: memberOf(sub, this.#liveNodes(value)) });
  }

  /** The per-node presence in a stored entry, leaving out nodes known to have stopped beating. */
  #liveNodes(value: string): NodePresence[] {
    if (value === "") return [];
    let nodes: WireNodes;
    try {
      nodes = JSON.parse(value) as WireNodes;
    } catch {
      return [];
    }
    const late = Date.now() - this.#timeoutMs;
    const live: NodePresence[] = [];
    for (const [node, entry] of Object.entries(nodes)) {
      const beat = this.#beats.get(node);
      if (node !== this.nodeId && beat !== undefined && beat < late) continue;
      live.push({ connections: Number(entry.c), sinceMs: Number(entry.s), info: entry.i });
    }
    return live;
  }

  async #beat(): Promise<void> {
    if (this.#closed) return;
    const now = Date.now();
    const added = await this.#redis.zadd(this.#keys.presenceNodes, now, this.nodeId);
    // Back in the set after another node removed us (we stalled past the timeout): our reports were withdrawn.
    if (Number(added) === 1 && this.#beaten) await this.#republish();
    this.#beaten = true;
    const flat = await this.#redis.zrange(this.#keys.presenceNodes, 0, -1, "WITHSCORES");
    const beats = new Map<string, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) beats.set(flat[i] as string, Number(flat[i + 1]));
    this.#beats = beats;
    for (const [node, beat] of beats) {
      if (node === this.nodeId || beat >= now - this.#timeoutMs) continue;
      if (Number(await this.#redis.zrem(this.#keys.presenceNodes, node)) === 1) await this.#reap(node);
    }
  }

  /** Withdraws a dead node's readers; every node hears each as a change. */
  async #reap(node: string): Promise<void> {
    const members = await this.#redis.smembers(this.#keys.presenceNode(node));
    await Promise.all(members.map((member) => this.#withdraw(node, member)));
    await this.#redis.del(this.#keys.presenceNode(node));
  }

  /** Writes again what this node reports now (one pass at a time), and the withdrawals that failed. */
  #republish(): Promise<void> {
    this.#republishing ??= (async () => {
      try {
        for (const key of [...this.#reported.keys()]) {
          // Read at write time: a reader that left while this pass ran must not be written back.
          const reported = this.#reported.get(key);
          if (reported === undefined) continue;
          await this.#write(this.nodeId, reported.mailbox, reported.sub, reported.presence);
          if (reported.presence === undefined && this.#reported.get(key) === reported) this.#reported.delete(key);
        }
      } finally {
        this.#republishing = undefined;
      }
    })();
    return this.#republishing;
  }
}

export function createRedisPresence(options: RedisPresenceOptions): RedisPresence {
  return new RedisPresence(options);
}
