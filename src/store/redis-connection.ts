import { Cluster, Redis, type RedisOptions } from "ioredis";

/** `redis-cluster://[user:pass@]host:port,host:port,...`: seed nodes of a Redis Cluster. */
export const CLUSTER_SCHEME = "redis-cluster:";

/** A command without an answer for this long fails (the publish becomes a 503) instead of hanging. */
const COMMAND_TIMEOUT_MS = 10_000;

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

function clusterSeeds(url: string): { seeds: { host: string; port: number }[]; auth: RedisOptions } {
  const rest = url.slice(`${CLUSTER_SCHEME}//`.length);
  const at = rest.lastIndexOf("@");
  const auth: RedisOptions = {};
  if (at !== -1) {
    const [user, password] = rest.slice(0, at).split(":");
    if (password === undefined) auth.password = decodeURIComponent(user as string);
    else {
      if (user) auth.username = decodeURIComponent(user);
      auth.password = decodeURIComponent(password);
    }
  }
  const seeds = rest
    .slice(at + 1)
    .replace(/\/.*$/, "")
    .split(",")
    .map((hostPort) => {
      const colon = hostPort.lastIndexOf(":");
      return { host: hostPort.slice(0, colon), port: Number(hostPort.slice(colon + 1)) };
    });
  if (seeds.some((seed) => !seed.host || !Number.isInteger(seed.port))) {
    throw new Error(`${CLUSTER_SCHEME} URLs list host:port seeds separated by commas, got "${url}"`);
  }
  return { seeds, auth };
}

/** Opens the two connections the Redis store uses; `redis-cluster://` selects a Cluster. */
export function openRedisConnections(url: string): RedisConnections {
  if (url.startsWith(CLUSTER_SCHEME)) {
    const { seeds, auth } = clusterSeeds(url);
    return {
      commands: new Cluster(seeds, { enableOfflineQueue: false, redisOptions: { ...auth, ...COMMAND_OPTIONS } }),
      subscriber: new Cluster(seeds, { redisOptions: { ...auth, autoResubscribe: true } }),
      cluster: true,
    };
  }
  return {
    commands: new Redis(url, { ...COMMAND_OPTIONS, enableOfflineQueue: false }),
    subscriber: new Redis(url, { autoResubscribe: true }),
    cluster: false,
  };
}
