import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { Redis } from "ioredis";
import { nanoid } from "nanoid";

/** How long a probe of an existing Redis, or a fresh redis-server, gets to answer. */
const REDIS_PROBE_MS = 1000;
const REDIS_START_MS = 10_000;
/** Keys deleted per DEL while cleaning a test prefix. */
const CLEANUP_BATCH = 500;

export interface TestRedis {
  readonly url: string;
  /** Stops the redis-server this helper started, if it started one. */
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** True when a Redis at `url` answers PING within a second. */
export async function answers(url: string): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: REDIS_PROBE_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

export function hasRedisServerBinary(): boolean {
  return spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
}

export interface RedisServerOptions {
  readonly port: number;
  /** Working directory; with `appendonly`, where the AOF lives across restarts. */
  readonly dir?: string;
  /** AOF with fsync on every write, so that an acknowledged write survives a kill -9. */
  readonly appendonly?: boolean;
  /** Cluster mode (needs `dir`, and port + 10000 free for the cluster bus). */
  readonly cluster?: boolean;
}

/** A redis-server child process on a loopback port; resolves once it answers PING. */
export class RedisServerProcess {
  readonly url: string;
  #child: ChildProcess | undefined;

  constructor(readonly options: RedisServerOptions) {
    this.url = `redis://127.0.0.1:${options.port}`;
  }

  async start(): Promise<void> {
    const args = ["--port", String(this.options.port), "--bind", "127.0.0.1", "--save", ""];
    args.push(
      ...(this.options.appendonly ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]),
    );
    if (this.options.dir) args.push("--dir", this.options.dir);
    if (this.options.cluster) {
      args.push("--cluster-enabled", "yes", "--cluster-config-file", `nodes-${this.options.port}.conf`);
    }
    const child = spawn("redis-server", args, { stdio: "ignore" });
    this.#child = child;
    const deadline = Date.now() + REDIS_START_MS;
    while (!(await answers(this.url))) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`redis-server did not start on ${this.url}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** SIGSTOP: Redis freezes with its connections open, so clients see a stall, not a disconnect. */
  pause(): void {
    this.#child?.kill("SIGSTOP");
  }

  /** SIGCONT after pause(); harmless when it is not paused. */
  resume(): void {
    this.#child?.kill("SIGCONT");
  }

  /** SIGKILL by default: nothing gets a chance to flush beyond what was already acknowledged. */
  async stop(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill(signal);
    await exited;
  }
}

/** Set by .ci/run: CI must run the Redis tests, so a missing Redis fails them instead of skipping. */
export const REDIS_REQUIRED = process.env.HERALD_REQUIRE_REDIS === "1";

/** A skip reason, or an error when HERALD_REQUIRE_REDIS forbids skipping. */
export function skipBecause(reason: string): { reason: string } {
  if (REDIS_REQUIRED) throw new Error(`Redis tests cannot run (HERALD_REQUIRE_REDIS=1): ${reason}`);
  return { reason };
}

/**
 * The Redis the tests use: REDIS_URL when set, else 127.0.0.1:6379 when it
 * answers, else a redis-server child on a free port. Undefined (with the
 * reason) when none of these is possible.
 */
export async function testRedis(): Promise<TestRedis | { reason: string }> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv) {
    if (await answers(fromEnv)) return { url: fromEnv, stop: async () => {} };
    return skipBecause(`REDIS_URL=${fromEnv} does not answer`);
  }
  const local = "redis://127.0.0.1:6379";
  if (await answers(local)) return { url: local, stop: async () => {} };
  if (!hasRedisServerBinary()) return skipBecause("no Redis at 127.0.0.1:6379 and no redis-server binary on PATH");
  const server = new RedisServerProcess({ port: await freePort() });
  await server.start();
  return { url: server.url, stop: () => server.stop("SIGTERM") };
}

async function isFree(port: number): Promise<boolean> {
  const server = createServer();
  const free = await new Promise<boolean>((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => resolve(true));
  });
  if (free) await new Promise<void>((resolve) => server.close(() => resolve()));
  return free;
}

/** Ports below the ephemeral range whose cluster-bus port (+10000) is free too. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (!taken.has(port) && (await isFree(port)) && (await isFree(port + 10_000))) return port;
  }
}

const CLUSTER_READY_MS = 20_000;

/** A Redis Cluster of `masters` redis-server children in `dir`; its URL uses the redis-cluster:// scheme. */
export async function startRedisCluster(dir: string, masters = 3): Promise<TestRedis> {
  const taken = new Set<number>();
  const servers: RedisServerProcess[] = [];
  const stop = async () => {
    for (const server of servers) await server.stop("SIGTERM");
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await clusterPort(taken);
      taken.add(port);
      const server = new RedisServerProcess({ port, dir, cluster: true });
      servers.push(server);
      await server.start();
    }
    const hosts = [...taken].map((port) => `127.0.0.1:${port}`);
    const created = spawnSync(
      "redis-cli",
      ["--cluster", "create", ...hosts, "--cluster-replicas", "0", "--cluster-yes"],
      {
        encoding: "utf8",
      },
    );
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    const deadline = Date.now() + CLUSTER_READY_MS;
    for (const port of taken) {
      const client = new Redis(port, "127.0.0.1");
      client.on("error", () => {});
      try {
        while (!/cluster_state:ok/.test(await client.cluster("INFO"))) {
          if (Date.now() > deadline) throw new Error("the test cluster never reached cluster_state:ok");
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      } finally {
        client.disconnect();
      }
    }
    return { url: `redis-cluster://${hosts.join(",")}`, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

export function hasRedisCli(): boolean {
  return spawnSync("redis-cli", ["--version"], { stdio: "ignore" }).status === 0;
}

/** A key prefix no other run shares. */
export function uniquePrefix(label: string): string {
  return `herald-test:${label}:${nanoid(8)}:`;
}

/** Deletes every key under `prefix` (never anything else: the Redis may be shared). */
export async function deleteKeys(url: string, prefix: string): Promise<void> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  client.on("error", () => {});
  try {
    let cursor = "0";
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", CLEANUP_BATCH);
      cursor = next;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== "0");
  } finally {
    client.disconnect();
  }
}
