import { Cluster, Redis, type RedisOptions } from "ioredis";
import { parseRedisUrl } from "./redis-url.js";

/** A command without an answer for this long fails (the publish becomes a 503) instead of hanging. */
const COMMAND_TIMEOUT_MS = 10_000;
/** Longest a close waits for QUIT before dropping a connection. */
const QUIT_TIMEOUT_MS = 2000;
/** How often a connected Redis is pinged to find a stall (see watchForStall). */
const STALL_PROBE_INTERVAL_MS = 500;
/** A PING unanswered this long (in probe ticks) means Redis is stalled: the store is not ready until it answers. */
const STALL_AFTER_MS = 2000;

export interface RedisConnections {
  /** Commands and scripts. Fails at once while disconnected, never re-sends a command. */
  readonly commands: Redis | Cluster;
  /** Pub/sub only; queues its SUBSCRIBE until connected and resubscribes after each reconnect. */
  readonly subscriber: Redis | Cluster;
  /** True on a Cluster: one script may only touch one mailbox's keys. */
  readonly cluster: boolean;
}

// Fail at once while disconnected: a publish must become a 503, never wait or be sent twice.
const COMMAND_OPTIONS = {
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  commandTimeout: COMMAND_TIMEOUT_MS,
  // Commands issued in one event-loop turn (concurrent publishes) go out in one socket write.
  enableAutoPipelining: true,
} satisfies RedisOptions;

/** The commands connection alone (`<name>:commands`), for a backend that needs no pub/sub; as in openRedisConnections. */
export function openRedisCommands(url: string, name = "herald"): Redis | Cluster {
  const target = parseRedisUrl(url);
  const redisOptions = { ...COMMAND_OPTIONS, connectionName: `${name}:commands` };
  if (target.cluster) {
    return new Cluster(target.seeds, { enableOfflineQueue: false, redisOptions: { ...target.auth, ...redisOptions } });
  }
  return new Redis(url, { ...redisOptions, enableOfflineQueue: false });
}

/**
 * Opens the two connections a Redis backend uses, named `<name>:commands` and `<name>:subscriber`; `redis-cluster://` selects a
 * Cluster. A malformed URL is a ConfigError (see parseRedisUrl).
 */
export function openRedisConnections(url: string, name = "herald"): RedisConnections {
  const target = parseRedisUrl(url);
  const commands = openRedisCommands(url, name);
  // Named, so that CLIENT LIST shows whose connections these are.
  const subscriberName = { connectionName: `${name}:subscriber` };
  if (target.cluster) {
    const { seeds, auth } = target;
    return {
      commands,
      subscriber: new Cluster(seeds, { redisOptions: { ...auth, autoResubscribe: true, ...subscriberName } }),
      cluster: true,
    };
  }
  return {
    commands,
    subscriber: new Redis(url, { autoResubscribe: true, ...subscriberName }),
    cluster: false,
  };
}

/** QUIT, so that replies in flight arrive, then disconnect; a Redis that stops answering does not hold it up. */
export async function closeRedisConnection(connection: Redis | Cluster): Promise<void> {
  if (connection.status === "ready") {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise((resolve) => {
      timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
    });
    await Promise.race([connection.quit().catch(() => {}), late]);
    clearTimeout(timer);
  }
  connection.disconnect();
}

/**
 * Waits until `connection` is ready (and `also` has settled, e.g. a subscription), or `timeoutMs`
 * passed; answers whether it is ready. Either way ioredis keeps trying.
 */
export async function whenRedisReady(
  connection: Redis | Cluster,
  timeoutMs: number,
  also: Promise<unknown> = Promise.resolve(),
): Promise<boolean> {
  const connected = new Promise<void>((resolve) => {
    if (connection.status === "ready") resolve();
    else connection.once("ready", () => resolve());
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([Promise.all([connected, also]), timeout]);
  clearTimeout(timer);
  return connection.status === "ready";
}

export interface StallWatch {
  /** True while PINGs on a ready connection have gone unanswered for STALL_AFTER_MS of probe ticks. */
  stalled(): boolean;
  stop(): void;
}

/**
 * Finds a Redis that stopped answering while its TCP connection stays up (SIGSTOP, a long fsync or
 * fork, a frozen VM): ioredis still says "ready" then, so without this every publish would be sent
 * and wait for COMMAND_TIMEOUT_MS, and /readyz would say ready. With it, once a PING has been
 * unanswered for STALL_AFTER_MS the store reports not ready, so new publishes get a prompt 503 and
 * are never sent (they cannot be stored later, when Redis wakes), and /readyz says so. Commands
 * already sent keep waiting for their answer. `recovered` runs when a stall ends.
 */
export function watchForStall(connection: Redis | Cluster, recovered: () => void): StallWatch {
  // Counted in probe ticks, not wall time: a Herald whose own event loop was blocked has not
  // heard Redis's answer yet, and must not take itself for a Redis that stopped answering.
  const stallTicks = Math.ceil(STALL_AFTER_MS / STALL_PROBE_INTERVAL_MS);
  /** Probe ticks that found the last PING still unanswered. */
  let unanswered = 0;
  let probing = false;
  const stalled = () => unanswered >= stallTicks;
  // A fresh connection starts with a clean slate; a PING of the old one may still fail after it.
  connection.on("ready", () => {
    unanswered = 0;
  });
  const timer = setInterval(() => {
    if (connection.status !== "ready") return;
    if (probing) {
      unanswered += 1;
      return;
    }
    probing = true;
    connection
      .ping()
      .then(() => {
        const wasStalled = stalled();
        unanswered = 0;
        if (wasStalled) recovered();
      })
      // A PING that failed (timed out) is not an answer: the count goes on with the next one.
      .catch(() => {})
      .finally(() => {
        probing = false;
      });
  }, STALL_PROBE_INTERVAL_MS);
  timer.unref();
  return { stalled, stop: () => clearInterval(timer) };
}
