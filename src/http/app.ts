import { Hono } from "hono";
import { HeraldError } from "../errors.js";
import type { AppDeps, HeraldEnv, Method, RouteSpec } from "./deps.js";
import { checkHost, errorBody } from "./host-check.js";
import { MERCURE_PATH, mercurePublish, mercureSubscribe } from "./mercure/mercure-routes.js";
import { mercureSubscriptions } from "./mercure/subscriptions-routes.js";
import { corsMiddleware } from "./middleware/cors.js";
import { requestLog } from "./middleware/request-log.js";
import { isNtfyWebSocketPath } from "./ntfy/ntfy-routes.js";
import { adminConfig, adminMailboxes, adminPage, adminStats, adminStatsEvents } from "./routes/admin-routes.js";
import { receiveHook } from "./routes/hook-routes.js";
import { latestRoute } from "./routes/latest-routes.js";
import { health, metricsRoute, readiness } from "./routes/operations-routes.js";
import { presenceRoute } from "./routes/presence-routes.js";
import { publishBatch, publishOne } from "./routes/publish-routes.js";
import {
  createPushSubscription,
  deletePushSubscription,
  getPushSubscription,
  vapidPublicKeyRoute,
} from "./routes/push-routes.js";
import { readMany, readOne } from "./routes/read-routes.js";
import { markReadRoute, readStateRoute, readStatesRoute } from "./routes/read-state-routes.js";
import { cancelScheduled, listScheduled } from "./routes/schedule-routes.js";
import { jsonLinesMany, jsonLinesOne, sseMany, sseOne } from "./routes/stream-routes.js";
import { mintToken } from "./routes/token-routes.js";
import { websocketRoute } from "./routes/ws-route.js";

const ALREADY_SENT_HEADER = "x-hono-already-sent";
const WEBSOCKET_PATH = "/v1/ws";

/** Every route Herald serves; openapi.yaml must list exactly these. */
export const ROUTES: readonly RouteSpec[] = [
  { method: "POST", path: "/v1/mailboxes/:mailbox/messages", handler: publishOne },
  { method: "GET", path: "/v1/mailboxes/:mailbox/messages", handler: readOne },
  { method: "GET", path: "/v1/mailboxes/:mailbox/latest", handler: latestRoute },
  { method: "GET", path: "/v1/mailboxes/:mailbox/events", handler: sseOne },
  { method: "GET", path: "/v1/mailboxes/:mailbox/stream", handler: jsonLinesOne },
  { method: "POST", path: "/v1/messages", handler: publishBatch },
  { method: "GET", path: "/v1/messages", handler: readMany },
  { method: "GET", path: "/v1/events", handler: sseMany },
  { method: "GET", path: "/v1/stream", handler: jsonLinesMany },
  { method: "GET", path: "/v1/mailboxes/:mailbox/scheduled", handler: listScheduled },
  { method: "DELETE", path: "/v1/scheduled/:id", handler: cancelScheduled },
  { method: "GET", path: "/v1/mailboxes/:mailbox/presence", handler: presenceRoute },
  { method: "PUT", path: "/v1/mailboxes/:mailbox/read", handler: markReadRoute },
  { method: "GET", path: "/v1/mailboxes/:mailbox/read", handler: readStateRoute },
  { method: "GET", path: "/v1/read", handler: readStatesRoute },
  { method: "GET", path: "/v1/push/vapid-public-key", handler: vapidPublicKeyRoute },
  { method: "POST", path: "/v1/push/subscriptions", handler: createPushSubscription },
  { method: "GET", path: "/v1/push/subscriptions/:id", handler: getPushSubscription },
  { method: "DELETE", path: "/v1/push/subscriptions/:id", handler: deletePushSubscription },
  { method: "GET", path: WEBSOCKET_PATH, handler: websocketRoute },
  { method: "POST", path: "/v1/hooks/:hook", handler: receiveHook },
  { method: "POST", path: "/v1/tokens", handler: mintToken },
  { method: "GET", path: "/metrics", handler: metricsRoute },
  { method: "GET", path: "/healthz", handler: health },
  { method: "GET", path: "/readyz", handler: readiness },
  { method: "GET", path: "/admin", handler: adminPage },
  { method: "GET", path: "/v1/admin/config", handler: adminConfig },
  { method: "GET", path: "/v1/admin/stats", handler: adminStats },
  { method: "GET", path: "/v1/admin/stats/events", handler: adminStatsEvents },
  { method: "GET", path: "/v1/admin/mailboxes", handler: adminMailboxes },
  { method: "GET", path: MERCURE_PATH, handler: mercureSubscribe },
  { method: "POST", path: MERCURE_PATH, handler: mercurePublish },
  { method: "GET", path: `${MERCURE_PATH}/subscriptions`, handler: mercureSubscriptions },
  { method: "GET", path: `${MERCURE_PATH}/subscriptions/:a`, handler: mercureSubscriptions },
  { method: "GET", path: `${MERCURE_PATH}/subscriptions/:a/:b`, handler: mercureSubscriptions },
  { method: "GET", path: `${MERCURE_PATH}/subscriptions/:a/:b/:c`, handler: mercureSubscriptions },
];

function renderError(error: HeraldError): Response {
  return new Response(errorBody(error), {
    status: error.status,
    headers: { "Content-Type": "application/json", ...error.headers },
  });
}

export function createApp(deps: AppDeps, routes: readonly RouteSpec[] = ROUTES): Hono<HeraldEnv> {
  const app = new Hono<HeraldEnv>();
  app.use(
    requestLog(
      () => deps.logger,
      (request) => deps.access.callerOf(request),
      (seconds) => deps.metrics.observePublish(seconds),
    ),
  );
  app.use(async (c, next) => {
    // Node hands every request asking to upgrade to the upgrade listener, which runs the app without a
    // response object and as a GET: only a GET of /v1/ws (or of an ntfy topic's …/ws) may go that way.
    const upgrading = c.env?.incoming !== undefined && c.env.outgoing === undefined;
    const upgradePath = c.req.path === WEBSOCKET_PATH || isNtfyWebSocketPath(deps.config?.ntfyPrefix, c.req.path);
    if (upgrading && (!upgradePath || c.env.incoming.method !== "GET")) {
      throw new HeraldError(
        "bad_parameter",
        `Only GET ${WEBSOCKET_PATH} (and the ntfy API's …/ws) upgrade to a WebSocket`,
      );
    }
    checkHost(deps, c.req.header("host"));
    await next();
  });
  app.use(corsMiddleware(() => deps.access.origins));
  if (deps.mercure?.settings.discovery) {
    app.use(async (c, next) => {
      await next();
      // Mercure clients discover the hub from the responses of the resources they read.
      if (!c.res.headers.has(ALREADY_SENT_HEADER) && !c.res.headers.has("Link")) {
        c.res.headers.set("Link", `<${new URL(MERCURE_PATH, c.req.url).href}>; rel="mercure"`);
      }
    });
  }
  app.use(async (c, next) => {
    await next();
    // A streamed response already wrote its head; its Response object is a shared marker, not ours to change.
    if (deps.hub.draining && !c.res.headers.has(ALREADY_SENT_HEADER)) c.res.headers.set("Connection", "close");
  });
  const methodsByPath = new Map<string, Method[]>();
  for (const route of routes) {
    app.on(route.method, route.path, (c) => route.handler(c, deps));
    methodsByPath.set(route.path, [...(methodsByPath.get(route.path) ?? []), route.method]);
  }
  for (const [path, methods] of methodsByPath) {
    const allow = methods.join(", ");
    app.all(path, (c) => {
      throw new HeraldError("method_not_allowed", `${c.req.method} is not allowed here; use ${allow}`, {
        Allow: allow,
      });
    });
  }
  app.notFound((c) => renderError(new HeraldError("not_found", `No route for ${c.req.method} ${c.req.path}`)));
  app.onError((error) => {
    if (error instanceof HeraldError) return renderError(error);
    deps.logger.error({ err: error }, "unhandled error");
    return renderError(new HeraldError("internal"));
  });
  return app;
}
