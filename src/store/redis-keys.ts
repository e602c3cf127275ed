import { ConfigError } from "../errors.js";

/** The prefix of every key and channel when none is given. */
export const DEFAULT_REDIS_KEY_PREFIX = "herald:";

/**
 * Refuses a prefix with `{` or `}`. Redis hashes a key by the text between its
 * first `{` and the next `}`, so a `{` in the prefix would open the tag before
 * the mailbox's own: `a{b}` would put every mailbox in one slot, `a{}` would
 * leave each key hashed whole and split a mailbox over shards. A `}` is
 * harmless today only because nothing before it opens a tag; refusing both
 * keeps the rule one a reader can check by eye: the prefix takes no part in
 * hash tags. `what` names the setting in the message.
 */
export function checkRedisKeyPrefix(prefix: string, what = "the Redis key prefix"): void {
  if (prefix.includes("{") || prefix.includes("}")) {
    throw new ConfigError(`${what} must not contain { or } (Redis reads them as a hash tag), got "${prefix}"`);
  }
}

/**
 * The names of everything the Redis store keeps, under one prefix. A
 * mailbox's keys share the hash tag `{<mailbox>}`, so that a Cluster keeps
 * them on one shard and one script may touch them all; docs/redis.md shows
 * the layout.
 */
export class RedisKeys {
  /** The pub/sub channel of wake-ups. */
  readonly channel: string;
  /** The pub/sub channel of moved read positions. */
  readonly readChannel: string;
  /** The pub/sub channel of presence changes. */
  readonly presenceChannel: string;
  /** Sorted set: node id -> its last presence heartbeat, epoch ms. */
  readonly presenceNodes: string;

  constructor(readonly prefix: string) {
    checkRedisKeyPrefix(prefix);
    this.channel = `${prefix}wake`;
    this.readChannel = `${prefix}read`;
    this.presenceChannel = `${prefix}presence`;
    this.presenceNodes = `${prefix}presence-nodes`;
  }

  /** Who is present on the mailbox (hash: reader -> JSON of its per-node presence; `#v` the version), beside its log. */
  presence(mailbox: string): string {
    return `${this.prefix}{${mailbox}}:presence`;
  }

  /** Set of "mailbox\nreader" a node reported, so that whoever finds it dead can withdraw them. */
  presenceNode(node: string): string {
    return `${this.prefix}presence-node:${node}`;
  }

  /** Each reader's read position in the mailbox (hash: reader -> "epoch seq"), beside its log. */
  reads(mailbox: string): string {
    return `${this.prefix}{${mailbox}}:reads`;
  }

  /** Each message key's newest seq in the mailbox (hash: key -> seq), beside its log. */
  latest(mailbox: string): string {
    return `${this.prefix}{${mailbox}}:latest`;
  }

  /**
   * Scheduled publishes (redis-schedule.ts): every key under the one hash tag `{#schedule}` (`#` is in
   * no mailbox name), so one script may touch them all on a Cluster. `queue` is a sorted set of every
   * entry by due time or lease end, `entries` a hash id -> entry, `order` the counter that orders ties.
   */
  schedule(): [queue: string, entries: string, order: string] {
    const tag = `${this.prefix}{#schedule}`;
    return [`${tag}:queue`, `${tag}:entries`, `${tag}:order`];
  }

  /** A mailbox's scheduled entries by due time (sorted set), beside the schedule's other keys. */
  scheduledIn(mailbox: string): string {
    return `${this.prefix}{#schedule}:mailbox:${mailbox}`;
  }

  /** The idempotency record of a scheduled publish (string "fingerprint\nid\ndueAtMs"); a mailbox name has no space. */
  scheduleKey(mailbox: string, key: string): string {
    return `${this.prefix}{#schedule}:key:${mailbox} ${key}`;
  }

  mailbox(mailbox: string): [meta: string, log: string, idem: string] {
    const tag = `${this.prefix}{${mailbox}}`;
    return [`${tag}:meta`, `${tag}:log`, `${tag}:idem`];
  }

  /**
   * Outside every mailbox's `{name}` tag: mailbox keys continue the prefix with
   * `{`, these with `delivery:`. Each is read and written alone, so any slot
   * its text hashes to on a Cluster will do.
   */
  delivery(key: string): string {
    return `${this.prefix}delivery:${key}`;
  }
}
