import { upgradeWebSocket } from "@hono/node-server";
import type { Context } from "hono";
import { type WebSocket, WebSocketServer } from "ws";
import type { ServeConfig } from "../../config.js";
import { drainingError } from "../../core/drain-gate.js";
import { HeraldError } from "../../errors.js";
import type { AppDeps, HeraldEnv } from "../deps.js";
import { checkCrossSite } from "../middleware/admission.js";
import { WsProtocol } from "../transports/ws-protocol.js";
import { WS_CLOSE_DRAINING, WsSink } from "../transports/ws-sink.js";

/** Room for the frame's own fields around a message body of `maxBodyBytes`. */
const FRAME_OVERHEAD_BYTES = 4096;

/** The `ws` server that @hono/node-server hands upgrades to; it never listens itself. */
export function createWebSocketServer(config: ServeConfig): WebSocketServer {
  return new WebSocketServer({
    noServer: true,
    maxPayload: config.maxBodyBytes + FRAME_OVERHEAD_BYTES,
    // Frames are small JSON and fan-out sends each to many sockets: compression costs more than it saves.
    perMessageDeflate: false,
  });
}

/**
 * Node hands a request to its upgrade listener, which calls the app without a
 * response object, only when Connection: Upgrade asks for one: anything else
 * arrived as plain HTTP and can never become a WebSocket. Refused while draining.
 */
export function assertUpgrade(c: Context<HeraldEnv>, deps: AppDeps, endpoint: string): void {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket" || c.env.outgoing !== undefined) {
    throw new HeraldError(
      "bad_parameter",
      `${endpoint} is a WebSocket endpoint; send Upgrade: websocket and Connection: Upgrade`,
    );
  }
  if (deps.hub.draining) throw drainingError();
}

/** GET /v1/ws: JSON frames; see transports/ws-protocol.ts for the protocol. */
export async function websocketRoute(c: Context<HeraldEnv>, deps: AppDeps): Promise<Response> {
  assertUpgrade(c, deps, "GET /v1/ws");
  // Authenticated before the upgrade (401 over HTTP); each subscribe and publish frame is checked for scope.
  const caller = await deps.access.authenticate(c, false);
  checkCrossSite(c, deps.access, caller, "write");
  const release = deps.access.hold(caller, "stream");
  // Until the WebSocket opens, the socket closing (handshake aborted) frees the slot; then the registry does.
  c.env.incoming.socket.once("close", release);
  let sink: WsSink | undefined;
  let protocol: WsProtocol | undefined;
  return upgradeWebSocket(c, {
    onOpen: (_event, ws) => {
      const socket = ws.raw as WebSocket;
      if (deps.hub.draining) {
        socket.close(WS_CLOSE_DRAINING, "server draining");
        return;
      }
      const opened = new WsSink(socket, caller, deps.config.maxQueueBytes, () => {
        deps.hub.counters.slowConsumersCut += 1;
      });
      sink = opened;
      protocol = new WsProtocol(opened, {
        hub: deps.hub,
        access: deps.access,
        publisher: deps.access.publisherFor(caller),
        maxTtlSeconds: deps.config.messageTtlSeconds,
        onInternalError: (error) => deps.logger.error({ err: error }, "websocket frame failed"),
      });
      deps.connections.add(opened, release);
    },
    onMessage: (event) => protocol?.receive(event.data),
    onClose: () => sink?.gone(),
    onError: () => sink?.gone(),
  });
}
