import type { IncomingMessage, Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { serve } from "@hono/node-server";
import { type AuthSettings, authEnabled } from "./auth/auth-config.js";
import { checkBinding, isLoopbackHost, resolveLimits, SOCKET_HEADROOM } from "./auth/binding.js";
import { type LimitSettings, NO_LIMITS } from "./auth/limits-config.js";
import type { ServeConfig } from "./config.js";
import { createHub, type Hub } from "./core/hub.js";
import { startDemoFeed } from "./demo/demo-feed.js";
import type { HookDefinition } from "./hooks/hook-config.js";
import { createHookService } from "./hooks/hook-service.js";
import { createAdminConsole } from "./http/admin-console.js";
import { createApp, ROUTES } from "./http/app.js";
import type { AppDeps, RouteSpec } from "./http/deps.js";
import { installFastLane } from "./http/fast-lane.js";
import { createMetrics, type MetricsSharing } from "./http/metrics.js";
import { type Access, createAccess } from "./http/middleware/access.js";
import { ntfyRoutes } from "./http/ntfy/ntfy-routes.js";
import { DEMO_ROUTES } from "./http/routes/demo-routes.js";
import { createWebSocketServer } from "./http/routes/ws-route.js";
import { ConnectionRegistry } from "./http/transports/connection.js";
import { createLogger, type Logger } from "./log.js";
import type { MercureSettings } from "./mercure/mercure-config.js";
import { createMercureHub } from "./mercure/mercure-hub.js";
import { DEFAULT_PRESENCE_SETTINGS, type PresenceSettings } from "./presence-config.js";
import { pushProblemLogger } from "./push/problem-log.js";
import type { PushSettings } from "./push/push-config.js";
import { createWebPush } from "./push/web-push.js";
import { DEFAULT_SCHEDULE_SETTINGS, type ScheduleSettings, scheduleOptions } from "./schedule-config.js";
import { listeningUrl } from "./startup-banner.js";
import { createLocalPresence } from "./store/local-presence.js";
import type { MailboxStore } from "./store/mailbox-store.js";
import { createMemorySchedule } from "./store/memory-schedule.js";
import type { PresenceStore } from "./store/presence-store.js";
import type { PushSubscriptionStore } from "./store/push-subscription-store.js";
import type { ScheduleStore } from "./store/schedule-store.js";

export interface RunningHerald {
  readonly url: string;
  readonly port: number;
  readonly hub: Hub;
  readonly store: MailboxStore;
  /** Every open SSE and ndjson stream and WebSocket. */
  readonly connections: ConnectionRegistry;
  /** Auth and abuse limits in force. */
  readonly access: Access;
  readonly server: Server;
  /** Drains (answers long-polls, ends streams, finishes publishes), closes the listener and the store. */
  shutdown(): Promise<void>;
}

/** Everything a running Herald serves: the API and the demo pages. openapi.yaml lists exactly these. */
export const SERVED_ROUTES: readonly RouteSpec[] = [...ROUTES, ...DEMO_ROUTES];

/** Slow clients must send their headers within this; it never touches long-lived responses. */
const HEADERS_TIMEOUT_MS = 20_000;
/** Refused connections are logged at most this often; herald_rate_limited_total{limit="connection"} counts them all. */
const REFUSAL_LOG_INTERVAL_MS = 60_000;
/** Whole request, body included; a response that streams for hours is not a request. */
const REQUEST_TIMEOUT_MS = 60_000;
/** How often Node checks the two timeouts above (its default, 30 s, lets a slow client linger far past them). */
const TIMEOUT_CHECK_INTERVAL_MS = 2_000;

/**
 * @hono/node-server's upgrade listener takes WebSocket upgrades and ignores
 * every other `Upgrade:`; Node then leaves such a socket open, outside every
 * request timeout, forever. Answer those with 400 and close. The listener is
 * wrapped, not joined by a second one: it rejects refused upgrades itself only
 * while it is the sole listener.
 */
function refuseOtherUpgrades(server: Server): void {
  const listeners = server.listeners("upgrade") as ((request: IncomingMessage, socket: Duplex, head: Buffer) => void)[];
  server.removeAllListeners("upgrade");
  server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (request.headers.upgrade?.toLowerCase() === "websocket") {
      for (const listener of listeners) listener.call(server, request, socket, head);
      return;
    }
    socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", () => socket.destroy());
  });
}

/** What `main` read from the config file, beyond the flags. */
export interface StartOptions {
  /** Webhook endpoints to serve under /v1/hooks/{id}. */
  readonly hooks?: readonly HookDefinition[];
  /** Keys, token verification and CORS; without it anyone may publish and read (loopback only, or --insecure). */
  readonly auth?: AuthSettings | undefined;
  readonly limits?: LimitSettings | undefined;
  /** Request and error logs; silent when not given. */
  readonly logger?: Logger;
  /** Who is connected where; built by `main` beside the store (a single-node one when not given). Closed on shutdown. */
  readonly presence?: PresenceStore;
  readonly presenceSettings?: PresenceSettings | undefined;
  /** Where scheduled publishes wait; built by `main` beside the store (a memory one when not given). Closed on shutdown. */
  readonly schedule?: ScheduleStore;
  readonly scheduleSettings?: ScheduleSettings | undefined;
  /** Web Push: the config file's `push` section, and where subscriptions live (built by `main` beside the store). */
  readonly push?: PushOptions | undefined;
  /** The config file's `mercure` section: serve a Mercure hub at /.well-known/mercure. */
  readonly mercure?: MercureSettings | undefined;
  /** Publish the demo pages' feed (default true); of several workers only one does. */
  readonly demoFeed?: boolean;
  /** How /metrics covers every worker; this process alone when not given. */
  readonly metricsSharing?: MetricsSharing;
}

export interface PushOptions {
  readonly settings: PushSettings;
  /** Closed on shutdown. */
  readonly subscriptions: PushSubscriptionStore;
  /** A CA (PEM) trusted besides the system's, for the tests' push service (a process can use NODE_EXTRA_CA_CERTS). */
  readonly ca?: string;
  /** The first retry's delay (tests shorten it). */
  readonly backoffMs?: number;
}

/** Starts Herald on an already-built store; `main` chooses and builds the store. */
export async function startHerald(
  config: ServeConfig,
  store: MailboxStore,
  options: StartOptions = {},
): Promise<RunningHerald> {
  const authOn = authEnabled(options.auth);
  const loopback = isLoopbackHost(config.host);
  const insecureWarning = checkBinding(config.host, authOn, config.insecure);
  const limits = resolveLimits(options.limits ?? NO_LIMITS, authOn || !loopback, config.workers);
  const access = await createAccess(options.auth, limits, {
    loopback,
    insecure: config.insecure,
    ...(options.mercure
      ? { reservedMailboxes: new Set([options.mercure.mailbox, options.mercure.subscriptionsMailbox]) }
      : {}),
  });
  const logger = options.logger ?? createLogger("silent");
  if (insecureWarning !== undefined) logger.warn(insecureWarning);
  const presenceStore = options.presence ?? createLocalPresence();
  const presenceSettings = options.presenceSettings ?? DEFAULT_PRESENCE_SETTINGS;
  const scheduleStore = options.schedule ?? createMemorySchedule();
  const push =
    options.push === undefined ? undefined : createWebPush({ ...options.push, onProblem: pushProblemLogger(logger) });
  const hub = createHub({
    store,
    defaultTtlSeconds: config.messageTtlSeconds,
    maxQueueBytes: config.maxQueueBytes,
    sendTimeoutMs: config.sendTimeoutSeconds * 1000,
    presenceStore,
    maxPresenceMembers: presenceSettings.maxMembers,
    longPollGraceMs: presenceSettings.longPollGraceSeconds * 1000,
    onError: (error) => logger.warn({ err: error }, "presence or read state unavailable"),
    scheduleStore,
    schedule: scheduleOptions(options.scheduleSettings ?? DEFAULT_SCHEDULE_SETTINGS),
    onScheduleError: (error) => logger.warn({ err: error }, "scheduled delivery"),
    ...(push === undefined ? {} : { onPublished: push.publish }),
  });
  const mercure =
    options.mercure === undefined
      ? undefined
      : createMercureHub({
          settings: options.mercure,
          hub,
          store,
          onError: (error) => logger.warn({ err: error }, "mercure subscription event"),
        });
  const connections = new ConnectionRegistry(config.heartbeatSeconds);
  const hooks = options.hooks?.length
    ? createHookService({
        hooks: options.hooks,
        store,
        onRefused: (hook, reason) => logger.warn({ hook, reason }, "webhook refused"),
      })
    : undefined;
  const metrics = createMetrics({ hub, store, connections, access, push }, options.metricsSharing);
  const admin = createAdminConsole({
    config,
    hub,
    store,
    connections,
    access,
    auth: options.auth,
    presence: presenceSettings,
    schedule: options.scheduleSettings ?? DEFAULT_SCHEDULE_SETTINGS,
  });
  const deps: AppDeps = {
    config,
    hub,
    store,
    connections,
    hooks,
    access,
    metrics,
    admin,
    logger,
    ...(push === undefined ? {} : { push }),
    ...(mercure === undefined ? {} : { mercure }),
  };
  const routes = [...SERVED_ROUTES, ...ntfyRoutes(config.ntfyPrefix)];
  const app = createApp(deps, routes);
  const demoFeed = options.demoFeed === false ? undefined : startDemoFeed(hub);
  const websocket = { server: createWebSocketServer(config) };
  const server = await new Promise<Server>((resolve, reject) => {
    const serverOptions = { connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS };
    const created = serve(
      { fetch: app.fetch, port: config.port, hostname: config.host, websocket, serverOptions },
      () => resolve(created as Server),
    ) as Server;
    created.once("error", reject);
  });
  refuseOtherUpgrades(server);
  installFastLane(server, deps, routes);
  let lastRefusalLogged = 0;
  server.on("connection", (socket: Socket) => {
    const release = access.holdSocket(socket.remoteAddress);
    if (release !== undefined) {
      socket.once("close", release);
      return;
    }
    // Refused before a byte is read: one host cannot take every socket by reconnecting faster than timeouts cut it.
    socket.destroy();
    if (Date.now() - lastRefusalLogged < REFUSAL_LOG_INTERVAL_MS) return;
    lastRefusalLogged = Date.now();
    logger.warn(
      { address: socket.remoteAddress, limit: limits.connectionsPerAddress },
      "connection refused: too many sockets from one address (limits.connectionsPerAddress; proxies belong in limits.trustedProxies)",
    );
  });
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  // A hard socket cap above the stream/long-poll cap, so publishes still get in when streams are full.
  server.maxConnections = limits.maxConnections + SOCKET_HEADROOM;
  const { port } = server.address() as AddressInfo;
  let shuttingDown: Promise<void> | undefined;
  const shutdown = () => {
    shuttingDown ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // One deadline for all of it: a publisher that stalls mid-body must not hold the shutdown.
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, config.drainTimeoutSeconds * 1000).unref());
      demoFeed?.stop();
      admin.close();
      const drained = hub.drain();
      // Streams end now (clients reconnect elsewhere with their cursor); a WebSocket may still owe the
      // answer to a publish it sent, so it ends once admitted publishes have finished.
      connections.endAll("draining", "sse", "ndjson");
      await Promise.race([drained, deadline]);
      connections.close();
      server.closeIdleConnections();
      await Promise.race([closed, deadline]);
      server.closeAllConnections();
      hub.close();
      await push?.close();
      await presenceStore.close();
      await scheduleStore.close();
      await store.close();
    })();
    return shuttingDown;
  };
  return {
    url: listeningUrl(config.host, port),
    port,
    hub,
    store,
    connections,
    access,
    server,
    shutdown,
  };
}
