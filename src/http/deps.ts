import type { ServeConfig } from "../config.js";
import type { Hub } from "../core/hub.js";
import type { HookService } from "../hooks/hook-service.js";
import type { MailboxStore } from "../store/mailbox-store.js";
import type { Access } from "./access.js";
import type { Metrics } from "./metrics.js";
import type { Logger } from "./request-log.js";
import type { StreamRegistry } from "./streams.js";
import type { WsRegistry } from "./ws-route.js";

/** What the HTTP layer is given by `main`; it builds none of it. */
export interface AppDeps {
  readonly config: ServeConfig;
  readonly hub: Hub;
  readonly store: MailboxStore;
  readonly streams: StreamRegistry;
  /** Webhook ingest; without it every /v1/hooks/{hook} is a 404. */
  readonly hooks?: HookService;
  readonly sockets: WsRegistry;
  /** Who may do what, and the abuse limits; every route asks it about every mailbox it touches. */
  readonly access: Access;
  readonly metrics: Metrics;
  readonly logger: Logger;
}
