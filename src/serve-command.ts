import { authEnabled, securityFromEnv } from "./auth/auth-config.js";
import { checkBinding, isLoopbackHost, resolveLimits, startupNotices } from "./auth/binding.js";
import { NO_LIMITS } from "./auth/limits-config.js";
import { parseServeConfig, SERVE_USAGE, type ServeConfig } from "./config.js";
import { EMPTY_FILE_CONFIG, loadConfigFile } from "./config-file.js";
import { ConfigError } from "./errors.js";
import { createLogger, type Logger } from "./log.js";
import { resolveLogLevel } from "./log-config.js";
import { DEFAULT_PRESENCE_SETTINGS, type PresenceSettings } from "./presence-config.js";
import { DEFAULT_SCHEDULE_SETTINGS } from "./schedule-config.js";
import { startHerald } from "./server.js";
import { startupBanner } from "./startup-banner.js";
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

/** `herald serve`: builds the backends once, starts Herald on them, drains on SIGTERM and SIGINT. */

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

export async function serveCommand(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(SERVE_USAGE);
    return;
  }
  const config = parseServeConfig(argv, process.env);
  const file = config.configFile === undefined ? EMPTY_FILE_CONFIG : loadConfigFile(config.configFile, process.env);
  const { auth, limits: limitSettings } = securityFromEnv(file, process.env);
  // Refuse an unsafe binding before a store is opened or Redis waited for.
  checkBinding(config.host, authEnabled(auth), config.insecure);
  const logger = createLogger(resolveLogLevel(file.log, process.env));
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
  });
  for (const line of startupBanner(herald.url, config, auth, file.hooks)) console.log(line);
  const limits = resolveLimits(limitSettings ?? NO_LIMITS, authEnabled(auth) || !isLoopbackHost(config.host));
  for (const notice of startupNotices(config.host, auth, config.insecure, limits)) {
    (notice.startsWith("WARNING") ? console.error : console.log)(notice);
  }
  let signalled = false;
  const stop = (signal: string) => {
    if (signalled) return;
    signalled = true;
    const open = herald.connections.count();
    console.log(`${signal} received: draining`);
    herald.shutdown().then(
      () => {
        console.log(
          `Herald stopped: ${open} open connection${open === 1 ? "" : "s"} ended, publishes finished; exit 0`,
        );
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
}
