import { authEnabled, securityFromEnv } from "./auth/auth-config.js";
import { checkBinding, isLoopbackHost, resolveLimits, startupNotices } from "./auth/binding.js";
import { NO_LIMITS } from "./auth/limits-config.js";
import { hookCommand } from "./cli/hook-sign.js";
import { keyCommand } from "./cli/key-create.js";
import { publishCommand } from "./cli/publish-command.js";
import { tailCommand } from "./cli/tail-command.js";
import { tokenCommand } from "./cli/token-command.js";
import { parseServeConfig, SERVE_USAGE, type ServeConfig } from "./config.js";
import { EMPTY_FILE_CONFIG, loadConfigFile } from "./config-file.js";
import { ConfigError } from "./errors.js";
import { createLogger, type Logger } from "./log.js";
import { resolveLogLevel } from "./log-config.js";
import { DEFAULT_PRESENCE_SETTINGS, type PresenceSettings } from "./presence-config.js";
import { startHerald } from "./server.js";
import { createLocalPresence } from "./store/local-presence.js";
import type { MailboxStore } from "./store/mailbox-store.js";
import { createMemoryStore } from "./store/memory-store.js";
import type { PresenceStore } from "./store/presence-store.js";
import { createRedisPresence } from "./store/redis-presence.js";
import { createRedisStore } from "./store/redis-store.js";
import { createSqliteStore } from "./store/sqlite-store.js";

const USAGE = `Usage: herald <command> [options]

Commands:
  serve     run the Herald server (herald serve --help)
  hook      sign a test webhook delivery (herald hook sign --help)
  key       make a publisher API key (herald key create --help)
  publish   publish a message (herald publish --help)
  tail      print a mailbox's messages as they arrive, resuming by cursor (herald tail --help)
  token     mint a subscriber token through /v1/tokens (herald token --help)

Client commands take --url or HERALD_URL (default http://127.0.0.1:8080).
`;

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

async function serveCommand(argv: string[]): Promise<void> {
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
  const herald = await startHerald(config, await buildStore(config, logger), {
    hooks: file.hooks,
    auth,
    limits: limitSettings,
    logger,
    presence: await buildPresence(config, presenceSettings, logger),
    presenceSettings,
  });
  console.log(`Herald listening on ${herald.url} (${config.store} store)`);
  const limits = resolveLimits(limitSettings ?? NO_LIMITS, authEnabled(auth) || !isLoopbackHost(config.host));
  for (const notice of startupNotices(config.host, auth, config.insecure, limits)) {
    (notice.startsWith("WARNING") ? console.error : console.log)(notice);
  }
  let signalled = false;
  const stop = (signal: string) => {
    if (signalled) return;
    signalled = true;
    console.log(`${signal} received: draining`);
    herald.shutdown().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error("shutdown failed", error);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

const COMMANDS: Readonly<Record<string, (argv: string[]) => Promise<void>>> = {
  serve: serveCommand,
  hook: hookCommand,
  key: keyCommand,
  publish: publishCommand,
  tail: tailCommand,
  token: tokenCommand,
};

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  try {
    const run = command !== undefined && Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (run) await run(rest);
    else if (command === undefined || command === "--help" || command === "-h" || command === "help") {
      console.log(USAGE);
    } else {
      console.error(`herald: unknown command "${command}"\n\n${USAGE}`);
      process.exitCode = 2;
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`herald: ${error.message}`);
      process.exitCode = 2;
      return;
    }
    if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
      console.error(`herald: ${(error as Error).message}`);
      process.exitCode = 1;
      return;
    }
    throw error;
  }
}

await main(process.argv.slice(2));
