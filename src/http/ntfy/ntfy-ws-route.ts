import { upgradeWebSocket } from "@hono/node-server";
import type { Context } from "hono";
import type { WebSocket } from "ws";
import { sinceCursor } from "../../ntfy/ntfy-since.js";
import type { AppDeps, HeraldEnv } from "../deps.js";
import { admitReader } from "../middleware/admission.js";
import { assertUpgrade } from "../routes/ws-route.js";
import { WS_CLOSE_DRAINING, WsSink } from "../transports/ws-sink.js";
import { adoptNtfyCredentials } from "./ntfy-auth.js";
import { ntfyFormat } from "./ntfy-formats.js";
import { subscribeRequest } from "./ntfy-request.js";

/**
 * GET …/<topics>/ws: ntfy's WebSocket, one JSON event per message (open, then
 * messages; keepalive is the WebSocket ping). It only delivers: anything the
 * client sends is ignored, as ntfy does.
 */
export async function ntfyWebSocket(c: Context<HeraldEnv>, deps: AppDeps): Promise<Response> {
  assertUpgrade(c, deps, "…/ws");
  adoptNtfyCredentials(c);
  const request = subscribeRequest(c, false);
  const { mailboxes, filter } = request;
  // A WebSocket's messages are not guarded by CORS, so a cookie-authenticated one must come from an allowed page.
  const grant = await admitReader(c, deps.access, mailboxes, "stream", "write");
  // Until the WebSocket opens, the socket closing (handshake aborted) frees the slot; then the registry does.
  c.env.incoming.socket.once("close", grant.release);
  let cursor: string | undefined;
  try {
    cursor = await sinceCursor(deps.store, mailboxes, request.since);
  } catch (error) {
    grant.release();
    throw error;
  }
  const format = ntfyFormat("json", request.topics);
  let sink: WsSink | undefined;
  return upgradeWebSocket(c, {
    onOpen: (_event, ws) => {
      const socket = ws.raw as WebSocket;
      if (deps.hub.draining) {
        socket.close(WS_CLOSE_DRAINING, "server draining");
        return;
      }
      const opened = new WsSink(
        socket,
        grant.caller,
        deps.config.maxQueueBytes,
        () => {
          deps.hub.counters.slowConsumersCut += 1;
        },
        format,
      );
      sink = opened;
      deps.connections.add(opened, grant.release);
      opened.write(format.opening("", 0));
      deps.hub.subscribe(mailboxes, cursor, opened, filter ? { filter } : {}).then(
        (subscription) => {
          if (opened.closed) {
            subscription.close();
            return;
          }
          opened.onClose(() => subscription.close());
          subscription.start();
        },
        () => opened.end("draining"),
      );
    },
    onClose: () => sink?.gone(),
    onError: () => sink?.gone(),
  });
}
