import type { AuthSettings } from "./auth/auth-config.js";
import type { LimitSettings } from "./auth/limits-config.js";
import type { ServeConfig } from "./config.js";
import type { FileConfig } from "./config-file.js";
import { ConfigError } from "./errors.js";
import type { MetricsSharing } from "./http/metrics.js";
import { createLogger, type Logger } from "./log.js";
import { resolveLogLevel } from "./log-config.js";
import { DEFAULT_PRESENCE_SETTINGS, type PresenceSettings } from "./presence-config.js";
import { DEFAULT_SCHEDULE_SETTINGS } from "./schedule-config.js";
import { startHerald } from "./server.js";
import { createLocalPresence } from "./store/local-presence.js";
import type { MailboxStore } from "./store/mailbox-store.js";
import { createMemoryPushSubscriptions } from "./store/memory-push-subscriptions.js";
import { createMemorySchedule } from "./store/memory-schedule.js";
import { createMemoryStore } from "./store/memory-store.js";
import type { PresenceStore } from "./store/presence-store.js";
import type { PushSubscriptionStore } from "./store/push-subscription-store.js";
import { createRedisPresence } from "./store/redis-presence.js";
import { createRedisPushSubscriptions } from "./store/redis-push-subscriptions.js";
import { createRedisSchedule } from "./store/redis-schedule.js";
import { createRedisStore } from "./store/redis-store.js";
import type { ScheduleStore } from "./store/schedule-store.js";
import { createSqlitePushSubscriptions } from "./store/sqlite-push-subscriptions.js";
import { createSqliteSchedule } from "./store/sqlite-schedule.js";
import { createSqliteStore, type SqliteStore } from "./store/sqlite-store.js";

/** How long `serve` waits for Redis before listening anyway. */
const REDIS_STARTUP_WAIT_MS = 5000;

/** The one place a backend is chosen and built; everything else receives it. */
async function buildStore(config: ServeConfig, logger: Logger): Promise<MailboxStore> {
  // A listener is the hub: a bug there is logged, and neither the append nor the other listeners suffer.
  const onListenerError = (error: unknown) => logger.error({ err: error }, "append listener failed");
  if (config.store === "redis") {
    const store = createRedisStore({
      onListenerError,
      url: config.redisUrl,
      keyPrefix: config.redisPrefix,
      maxMessagesPerMailbox: config.maxMessagesPerMailbox,
    });
    // Start even when Redis is down (readyz says so, ioredis keeps reconnecting), but not before it had a chance.
    await store.whenReady(REDIS_STARTUP_WAIT_MS);
    return store;
  }
  if (config.store === "sqlite") {
    return createSqliteStore({
      onListenerError,
      dataDir: config.dataDir,
      sync: config.sqliteSync,
      maxMessagesPerMailbox: config.maxMessagesPerMailbox,
      maxBytes: config.maxStoreBytes,
    });
  }
  if (config.store !== "memory") {
    throw new ConfigError(`--store ${config.store} is not available in this build`);
  }
  return createMemoryStore({
    onListenerError,
    maxMailboxes: config.maxMailboxes,
    maxMessagesPerMailbox: config.maxMessagesPerMailbox,
    maxBytes: config.maxStoreBytes,
  });
}

/** Presence is shared through Redis when the store is; otherwise this process is the only node. */
async function buildPresence(config: ServeConfig, settings: PresenceSettings, logger: Logger): Promise<PresenceStore> {
  const onListenerError = (error: unknown) => logger.error({ err: error }, "presence listener failed");
  if (config.store !== "redis") return createLocalPresence({ onListenerError });
  const presence = createRedisPresence({
    onListenerError,
    url: config.redisUrl,
    keyPrefix: config.redisPrefix,
    nodeTimeoutMs: settings.nodeTimeoutSeconds * 1000,
  });
  await presence.whenReady(REDIS_STARTUP_WAIT_MS);
  return presence;
}

/** Scheduled publishes live beside the messages: in the SQLite database, in Redis, or in this process. */
async function buildSchedule(config: ServeConfig, store: MailboxStore): Promise<ScheduleStore> {
  if (config.store === "sqlite") return createSqliteSchedule({ db: (store as SqliteStore).database });
  if (config.store !== "redis") return createMemorySchedule();
  const schedule = createRedisSchedule({ url: config.redisUrl, keyPrefix: config.redisPrefix });
  await schedule.whenReady(REDIS_STARTUP_WAIT_MS);
  return schedule;
}

/** Push subscriptions live beside the messages too: lost with the process on memory, kept on SQLite and Redis. */
async function buildPushSubscriptions(config: ServeConfig, store: MailboxStore): Promise<PushSubscriptionStore> {
  if (config.store === "sqlite") return createSqlitePushSubscriptions({ db: (store as SqliteStore).database });
  if (config.store !== "redis") return createMemoryPushSubscriptions();
  const subscriptions = createRedisPushSubscriptions({ url: config.redisUrl, keyPrefix: config.redisPrefix });
  await subscriptions.whenReady(REDIS_STARTUP_WAIT_MS);
  return subscriptions;
}

/** What `herald serve` read from its flags, environment and config file. */
export interface ServeSetup {
  readonly config: ServeConfig;
  readonly file: FileConfig;
  readonly auth: AuthSettings | undefined;
  readonly limitSettings: LimitSettings | undefined;
}

/** This process's place among `--workers`; undefined when it serves alone. */
export interface WorkerRole {
  /** 0 to workers - 1; a replacement takes the index of the worker it replaces. */
  readonly index: number;
  readonly metricsSharing: MetricsSharing;
}

/**
 * One serving process: builds the backends once, starts Herald on them and
 * drains on SIGTERM and SIGINT. Returns the URL it listens on.
 */
export async function serveProcess(setup: ServeSetup, worker?: WorkerRole): Promise<string> {
  const { config, file, auth, limitSettings } = setup;
  const rootLogger = createLogger(resolveLogLevel(file.log, process.env));
  const logger = worker === undefined ? rootLogger : rootLogger.child({ worker: worker.index });
  const presenceSettings = file.presence ?? DEFAULT_PRESENCE_SETTINGS;
  const store = await buildStore(config, logger);
  // The ntfy prefix lives in the config file, not among the flags; the server reads it from its config.
  const served = file.ntfy === undefined ? config : { ...config, ntfyPrefix: file.ntfy.prefix };
  const herald = await startHerald(served, store, {
    hooks: file.hooks,
    auth,
    limits: limitSettings,
    logger,
    presence: await buildPresence(config, presenceSettings, logger),
    presenceSettings,
    schedule: await buildSchedule(config, store),
    scheduleSettings: file.schedule ?? DEFAULT_SCHEDULE_SETTINGS,
    push:
      file.push === undefined
        ? undefined
        : { settings: file.push, subscriptions: await buildPushSubscriptions(config, store) },
    mercure: file.mercure,
    ...(worker === undefined ? {} : { demoFeed: worker.index === 0, metricsSharing: worker.metricsSharing }),
  });
  // A worker drains quietly: the primary tells the story once for all of them.
  const say = worker === undefined ? (line: string) => console.log(line) : () => {};
  let signalled = false;
  const stop = (signal: string) => {
    if (signalled) return;
    signalled = true;
    const open = herald.connections.count();
    say(`${signal} received: draining`);
    herald.shutdown().then(
      () => {
        say(`Herald stopped: ${open} open connection${open === 1 ? "" : "s"} ended, publishes finished; exit 0`);
        process.exit(0);
      },
      (error: unknown) => {
        console.error("shutdown failed", error);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  return herald.url;
}
