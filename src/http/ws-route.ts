import { upgradeWebSocket } from "@hono/node-server";
import type { Context } from "hono";
import { type WebSocket, WebSocketServer } from "ws";
import type { ServeConfig } from "../config.js";
import { HeraldError } from "../errors.js";
import type { Caller } from "./access.js";
import { checkCrossSite } from "./admission.js";
import type { HeraldEnv } from "./app.js";
import type { AppDeps } from "./deps.js";
import { WS_CLOSE_DRAINING, WsConnection } from "./ws-connection.js";

/** Room for the frame's own fields around a message body of `maxBodyBytes`. */
const FRAME_OVERHEAD_BYTES = 4096;
/** Pings sent before the keep-alive loop yields to the event loop. */
const PING_CHUNK_SIZE = 1000;

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
 * Every open WebSocket. One timer pings them all each heartbeat interval and
 * cuts any that did not answer the previous ping; draining closes them all.
 */
export class WsRegistry {
  readonly #connections = new Set<WsConnection>();
  readonly #timer: NodeJS.Timeout;

  constructor(heartbeatSeconds: number) {
    this.#timer = setInterval(() => void this.#keepAlive(), heartbeatSeconds * 1000);
    this.#timer.unref();
  }

  get size(): number {
    return this.#connections.size;
  }

  accept(socket: WebSocket, deps: AppDeps, caller: Caller): WsConnection {
    const connection = new WsConnection(socket, deps, caller, (gone) => this.#connections.delete(gone));
    this.#connections.add(connection);
    return connection;
  }

  /** Closes every socket with 1001; clients reconnect elsewhere with their cursor. */
  closeAll(): void {
    for (const connection of this.#connections) connection.end("draining");
    this.#connections.clear();
  }

  close(): void {
    clearInterval(this.#timer);
    this.closeAll();
  }

  async #keepAlive(): Promise<void> {
    let visited = 0;
    for (const connection of [...this.#connections]) {
      if (!connection.alive) connection.terminate();
      else connection.ping();
      if (++visited % PING_CHUNK_SIZE === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

/** setTimeout's ceiling (~24.8 days); a later token expiry closes the socket early and the client renews. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** GET /v1/ws: JSON frames; see ws-connection.ts for the protocol. */
export async function websocketRoute(c: Context<HeraldEnv>, deps: AppDeps): Promise<Response> {
  // Node hands a request to its upgrade listener, which calls us without a response object, only when
  // Connection: Upgrade asks for one. Anything else arrived as plain HTTP and can never become a WebSocket.
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket" || c.env.outgoing !== undefined) {
    throw new HeraldError(
      "bad_parameter",
      "GET /v1/ws is a WebSocket endpoint; send Upgrade: websocket and Connection: Upgrade",
    );
  }
  if (deps.hub.draining) throw new HeraldError("draining", undefined, { "Retry-After": "1" });
  // Authenticated before the upgrade (401 over HTTP); each subscribe and publish frame is checked for scope.
  const caller = await deps.access.authenticate(c, false);
  checkCrossSite(c, deps.access, caller, "write");
  const release = deps.access.hold(caller, "stream");
  let connection: WsConnection | undefined;
  let expiry: NodeJS.Timeout | undefined;
  const gone = () => {
    clearTimeout(expiry);
    release();
    connection?.gone();
  };
  // Upgrades have no Node response; the socket closing (handshake aborted or WebSocket gone) frees the slot.
  c.env.incoming.socket.once("close", release);
  return upgradeWebSocket(c, {
    onOpen: (_event, ws) => {
      const socket = ws.raw as WebSocket;
      if (deps.hub.draining) {
        socket.close(WS_CLOSE_DRAINING, "server draining");
        return;
      }
      const accepted = deps.sockets.accept(socket, deps, caller);
      connection = accepted;
      if (caller.expiresAt !== undefined) {
        const delay = Math.min(MAX_TIMER_MS, Math.max(0, caller.expiresAt - Date.now()));
        expiry = setTimeout(() => accepted.expire(), delay);
      }
    },
    onMessage: (event) => {
      connection?.receive(event.data);
    },
    onClose: gone,
    onError: gone,
  });
}
