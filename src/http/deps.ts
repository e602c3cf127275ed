import type { HttpBindings } from "@hono/node-server";
import type { Context } from "hono";
import type { ServeConfig } from "../config.js";
import type { Hub } from "../core/hub.js";
import type { HookService } from "../hooks/hook-service.js";
import type { Logger } from "../log.js";
import type { MercureHub } from "../mercure/mercure-hub.js";
import type { WebPush } from "../push/web-push.js";
import type { MailboxStore } from "../store/mailbox-store.js";
import type { AdminConsole } from "./admin-console.js";
import type { Metrics } from "./metrics.js";
import type { Access } from "./middleware/access.js";
import type { ConnectionRegistry } from "./transports/connection.js";

/** What the HTTP layer is given by `main`; it builds none of it. */
export interface AppDeps {
  readonly config: ServeConfig;
  readonly hub: Hub;
  readonly store: MailboxStore;
  /** Every open stream and WebSocket. */
  readonly connections: ConnectionRegistry;
  /** Webhook ingest; without it every /v1/hooks/{hook} is a 404. */
  readonly hooks?: HookService;
  /** Who may do what, and the abuse limits; every route asks it about every mailbox it touches. */
  readonly access: Access;
  readonly metrics: Metrics;
  /** The admin console's stats ring, per-mailbox rates and configuration summary. */
  readonly admin: AdminConsole;
  readonly logger: Logger;
  /** Web Push; without it the /v1/push routes answer 404 push_unavailable. */
  readonly push?: WebPush;
  /** The Mercure hub at /.well-known/mercure; without it those routes answer 404. */
  readonly mercure?: MercureHub;
}

export type HeraldEnv = { Bindings: HttpBindings };
export type Method = "GET" | "POST" | "PUT" | "DELETE";
export type Handler = (c: Context<HeraldEnv>, deps: AppDeps) => Response | Promise<Response>;

export interface RouteSpec {
  readonly method: Method;
  readonly path: string;
  readonly handler: Handler;
}
