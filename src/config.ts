import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { argumentError, ConfigError } from "./errors.js";
import { DEFAULT_NTFY_PREFIX } from "./ntfy/ntfy-config.js";
import { checkRedisKeyPrefix, DEFAULT_REDIS_KEY_PREFIX } from "./store/redis-keys.js";
import { parseRedisUrl } from "./store/redis-url.js";

/** Everything `herald serve` can be told, from flags or the environment. */
export type StoreKind = "memory" | "sqlite" | "redis";
export type SqliteSync = "full" | "normal";

export interface ServeConfig {
  readonly host: string;
  /** Which MailboxStore backend `main` builds. */
  readonly store: StoreKind;
  /** Directory of the SQLite database (store "sqlite"). */
  readonly dataDir: string;
  /** SQLite synchronous mode (store "sqlite"). */
  readonly sqliteSync: SqliteSync;
  /** Redis connection URL (store "redis"). */
  readonly redisUrl: string;
  /** Prefix of every Redis key and channel (store "redis"); deployments sharing a Redis need distinct ones. */
  readonly redisPrefix: string;
  /** Serve without auth on a non-loopback address (refused otherwise). */
  readonly insecure: boolean;
  /** Path of the JSON config file (hooks, auth, limits), if any. */
  readonly configFile: string | undefined;
  readonly port: number;
  /** Seconds between heartbeats on idle streams; keep below any proxy's idle timeout. */
  readonly heartbeatSeconds: number;
  /** The `retry:` an EventSource is told to wait before reconnecting. */
  readonly sseRetryMs: number;
  /** Largest request body accepted. */
  readonly maxBodyBytes: number;
  /** Mailboxes kept in memory; the least recently used beyond it is evicted. */
  readonly maxMailboxes: number;
  /** Messages retained per mailbox. */
  readonly maxMessagesPerMailbox: number;
  /** Retention of a message whose publisher gave no ttl; also the largest ttl accepted. */
  readonly messageTtlSeconds: number;
  /** Bytes of messages kept over all mailboxes. */
  readonly maxStoreBytes: number;
  /** Bytes queued for one connection beyond which the subscriber is cut (it resumes by cursor). */
  readonly maxQueueBytes: number;
  /** Seconds a connection catching up from the store may read nothing, with bytes waiting, before it is cut. */
  readonly sendTimeoutSeconds: number;
  /** Longest a shutdown waits for connections to finish before closing them. */
  readonly drainTimeoutSeconds: number;
  /** Processes sharing the port (node:cluster); more than one needs the Redis store, where they share mailboxes. */
  readonly workers: number;
  /** Where the ntfy-compatible API is served ("/" the root, false off); the config file's `ntfy.prefix` sets it. */
  readonly ntfyPrefix: string | false;
}

export const DEFAULT_CONFIG: ServeConfig = {
  host: "127.0.0.1",
  store: "memory",
  dataDir: "./data",
  sqliteSync: "full",
  redisUrl: "redis://127.0.0.1:6379",
  redisPrefix: DEFAULT_REDIS_KEY_PREFIX,
  insecure: false,
  configFile: undefined,
  port: 8080,
  heartbeatSeconds: 15,
  sseRetryMs: 2000,
  maxBodyBytes: 64 * 1024,
  maxMailboxes: 100_000,
  maxMessagesPerMailbox: 1000,
  messageTtlSeconds: 24 * 60 * 60,
  maxStoreBytes: 256 * 1024 * 1024,
  maxQueueBytes: 1024 * 1024,
  sendTimeoutSeconds: 30,
  drainTimeoutSeconds: 5,
  workers: 1,
  ntfyPrefix: DEFAULT_NTFY_PREFIX,
};

interface Setting {
  readonly key: keyof ServeConfig;
  readonly flag: string;
  readonly env: string;
  readonly min: number;
  readonly max: number;
}

const NUMERIC_SETTINGS: readonly Setting[] = [
  { key: "port", flag: "port", env: "PORT", min: 0, max: 65535 },
  { key: "heartbeatSeconds", flag: "heartbeat", env: "HERALD_HEARTBEAT_SECONDS", min: 0.05, max: 3600 },
  { key: "sseRetryMs", flag: "sse-retry-ms", env: "HERALD_SSE_RETRY_MS", min: 0, max: 600_000 },
  { key: "maxBodyBytes", flag: "max-body-bytes", env: "HERALD_MAX_BODY_BYTES", min: 64, max: 64 * 1024 * 1024 },
  { key: "maxMailboxes", flag: "max-mailboxes", env: "HERALD_MAX_MAILBOXES", min: 1, max: 100_000_000 },
  {
    key: "maxMessagesPerMailbox",
    flag: "max-messages",
    env: "HERALD_MAX_MESSAGES_PER_MAILBOX",
    min: 1,
    max: 10_000_000,
  },
  { key: "messageTtlSeconds", flag: "ttl", env: "HERALD_MESSAGE_TTL_SECONDS", min: 1, max: 10 * 365 * 86400 },
  { key: "maxStoreBytes", flag: "max-store-bytes", env: "HERALD_MAX_STORE_BYTES", min: 1024, max: 2 ** 50 },
  { key: "maxQueueBytes", flag: "max-queue-bytes", env: "HERALD_MAX_QUEUE_BYTES", min: 1024, max: 2 ** 32 },
  { key: "sendTimeoutSeconds", flag: "send-timeout", env: "HERALD_SEND_TIMEOUT_SECONDS", min: 0.05, max: 3600 },
  { key: "drainTimeoutSeconds", flag: "drain-timeout", env: "HERALD_DRAIN_TIMEOUT_SECONDS", min: 0, max: 600 },
];

export const SERVE_USAGE = `Usage: herald serve [options]

Options (each also read from the environment variable shown):
  --host ADDR              listen address (HOST, default ${DEFAULT_CONFIG.host})
  --port N                 listen port, 0 for any free one (PORT, default ${DEFAULT_CONFIG.port})
  --store KIND             memory, sqlite or redis (HERALD_STORE, default ${DEFAULT_CONFIG.store})
  --data-dir DIR           SQLite database directory (HERALD_DATA_DIR, default ${DEFAULT_CONFIG.dataDir})
  --sync MODE              SQLite synchronous mode: full or normal (HERALD_SQLITE_SYNC, default ${DEFAULT_CONFIG.sqliteSync})
  --redis-url URL          Redis URL, or redis-cluster://host:port,host:port (REDIS_URL, default ${DEFAULT_CONFIG.redisUrl})
  --redis-prefix TEXT      prefix of Redis keys and channels (HERALD_REDIS_PREFIX, default ${DEFAULT_CONFIG.redisPrefix})
  --config FILE            JSON config file: hooks, auth, limits, log (HERALD_CONFIG)
  --insecure               allow a non-loopback --host without auth (HERALD_INSECURE=1)
  --workers N|auto         processes sharing the port, auto = one per core; over 1 needs --store redis
                           (HERALD_WORKERS, default ${DEFAULT_CONFIG.workers})
${NUMERIC_SETTINGS.filter((s) => s.key !== "port")
  .map((s) => `${`  --${s.flag} N`.padEnd(27)}${s.env} (default ${DEFAULT_CONFIG[s.key]})`)
  .join("\n")}
  -h, --help               show this help`;

/** Flags win over the environment, which wins over the defaults. */
export function parseServeConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ServeConfig {
  const options: Record<string, { type: "string" | "boolean" }> = {
    host: { type: "string" },
    store: { type: "string" },
    "data-dir": { type: "string" },
    sync: { type: "string" },
    "redis-url": { type: "string" },
    "redis-prefix": { type: "string" },
    config: { type: "string" },
    insecure: { type: "boolean" },
    workers: { type: "string" },
  };
  for (const setting of NUMERIC_SETTINGS) options[setting.flag] = { type: "string" };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }));
  } catch (error) {
    throw argumentError(error);
  }
  const config: Record<string, unknown> = { ...DEFAULT_CONFIG };
  const host = (values.host as string | undefined) ?? env.HOST;
  if (host !== undefined) {
    if (host.length === 0) throw new ConfigError("--host must not be empty");
    config.host = host;
  }
  const text = (flag: string, envName: string): string | undefined => {
    const value = (values[flag] as string | undefined) ?? env[envName];
    return value === "" ? undefined : value;
  };
  const store = text("store", "HERALD_STORE");
  if (store !== undefined) {
    if (store !== "memory" && store !== "sqlite" && store !== "redis") {
      throw new ConfigError(`--store must be memory, sqlite or redis, got "${store}"`);
    }
    config.store = store;
  }
  const sync = text("sync", "HERALD_SQLITE_SYNC");
  if (sync !== undefined) {
    if (sync !== "full" && sync !== "normal") throw new ConfigError(`--sync must be full or normal, got "${sync}"`);
    config.sqliteSync = sync;
  }
  config.dataDir = text("data-dir", "HERALD_DATA_DIR") ?? config.dataDir;
  config.redisUrl = text("redis-url", "REDIS_URL") ?? config.redisUrl;
  // Checked only for the Redis store: another store may run beside a REDIS_URL meant for something else.
  if (config.store === "redis") parseRedisUrl(config.redisUrl as string, "--redis-url");
  const redisPrefix = text("redis-prefix", "HERALD_REDIS_PREFIX");
  if (redisPrefix !== undefined) {
    checkRedisKeyPrefix(redisPrefix, "--redis-prefix");
    config.redisPrefix = redisPrefix;
  }
  config.configFile = text("config", "HERALD_CONFIG");
  config.insecure = values.insecure === true || env.HERALD_INSECURE === "1" || env.HERALD_INSECURE === "true";
  for (const setting of NUMERIC_SETTINGS) {
    const fromFlag = values[setting.flag] as string | undefined;
    const raw = fromFlag ?? env[setting.env];
    if (raw === undefined || raw === "") continue;
    const value = Number(raw);
    const where = fromFlag === undefined ? setting.env : `--${setting.flag}`;
    if (!Number.isFinite(value) || value < setting.min || value > setting.max) {
      throw new ConfigError(`${where} must be a number from ${setting.min} to ${setting.max}, got "${raw}"`);
    }
    config[setting.key] = value;
  }
  const workers = text("workers", "HERALD_WORKERS");
  if (workers !== undefined) config.workers = parseWorkers(workers);
  if ((config.workers as number) > 1 && config.store !== "redis") {
    throw new ConfigError(
      `--workers ${config.workers} needs --store redis: the ${config.store} store lives in one process, so ` +
        "workers would not see each other's messages; run one worker, or share the mailboxes through Redis",
    );
  }
  return config as unknown as ServeConfig;
}

/** Most processes one Herald starts; far beyond any core count, low enough to catch a typo. */
const MAX_WORKERS = 256;

function parseWorkers(raw: string): number {
  if (raw === "auto") return availableParallelism();
  const count = Number(raw);
  if (!Number.isInteger(count) || count < 1 || count > MAX_WORKERS) {
    throw new ConfigError(`--workers must be auto or a whole number from 1 to ${MAX_WORKERS}, got "${raw}"`);
  }
  return count;
}
