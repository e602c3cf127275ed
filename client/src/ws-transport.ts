import { HeraldClientError } from "./errors.js";
import { isReaderEvent } from "./reader-state.js";
import { conflatedEvent, frameCursor, type Transport } from "./transport.js";
import type { GapEvent, HeraldMessage, WebSocketConstructor } from "./types.js";
import { viewFrame } from "./view.js";

/** Browsers cannot send WebSocket pings, so the client sends a `ping` frame this often to prove the path. */
export const WS_CLIENT_PING_MS = 20_000;
const SUBSCRIBE_REF = "herald-subscribe";
/** HTTP status matching an error frame's code, so retry decisions match the HTTP transports'. */
const STATUS_OF_CODE: Record<string, number> = {
  unauthorized: 401,
  forbidden: 403,
  too_many_requests: 429,
  internal: 500,
  draining: 503,
  store_unavailable: 503,
};

/**
 * GET /v1/ws: one subscribe frame with the cursor (and filters and mode), then message, gap, cursor,
 * conflated, presence, read and unread frames.
 */
export const wsTransport: Transport = (request, events) => {
  const Socket = request.WebSocket ?? (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket;
  let done = false;
  const finish = (error?: HeraldClientError, fallback?: boolean) => {
    if (done) return;
    done = true;
    clearInterval(pinger);
    events.closed(error, fallback);
  };
  let pinger: ReturnType<typeof setInterval> | undefined;
  if (!Socket) {
    queueMicrotask(() =>
      finish(new HeraldClientError(0, "no_websocket", "No WebSocket here; pass { WebSocket } in Node 20"), true),
    );
    return {
      close: () => {
        done = true;
      },
    };
  }
  const url = new URL("/v1/ws", request.baseUrl.replace(/^http/, "ws"));
  // Browsers cannot set headers on a WebSocket; Herald accepts the token as a query parameter.
  if (request.token) url.searchParams.set("token", request.token);
  const socket = new Socket(url.toString());
  socket.onopen = () => {
    const frame: Record<string, unknown> = { type: "subscribe", mailboxes: request.mailboxes, ref: SUBSCRIBE_REF };
    if (request.cursor !== undefined) frame.cursor = request.cursor;
    // Only what is asked for: a server that predates these fields refuses a frame that carries them.
    const { reader, presence, unread } = request.extras;
    if (reader !== undefined) frame.reader = reader;
    if (presence) frame.presence = true;
    if (unread) frame.unread = true;
    Object.assign(frame, viewFrame(request.view));
    socket.send(JSON.stringify(frame));
    pinger = setInterval(() => socket.send('{"type":"ping"}'), WS_CLIENT_PING_MS);
  };
  socket.onmessage = (event) => {
    if (done) return;
    events.alive();
    const frame = JSON.parse(String(event.data)) as { type: string; ref?: unknown; code?: string; message?: string };
    if (frame.type === "message") events.message(frame as unknown as HeraldMessage);
    else if (frame.type === "gap") events.gap(frame as unknown as GapEvent);
    else if (frame.type === "cursor" || (frame.type === "subscribed" && frame.ref === SUBSCRIBE_REF)) {
      // Where the subscription starts, and where a filter moved it past messages it left out.
      const cursor = frameCursor(frame);
      if (cursor !== undefined) events.cursor(cursor);
    } else if (frame.type === "conflated") {
      const conflated = conflatedEvent(frame);
      if (conflated) events.conflated(conflated);
    }
    // A presence frame with a ref answers a request; the stream's own events carry none.
    else if (frame.ref === undefined && isReaderEvent(frame)) events.reader(frame);
    else if (frame.type === "error" && frame.ref === SUBSCRIBE_REF) {
      const status = STATUS_OF_CODE[frame.code ?? ""] ?? 400;
      finish(new HeraldClientError(status, frame.code ?? "error", frame.message ?? "subscribe failed"));
      socket.close();
    }
  };
  socket.onerror = () => finish(new HeraldClientError(0, "network", "WebSocket error"));
  socket.onclose = (event) => {
    const clean = event.code === 1000 || event.code === 1001;
    finish(clean ? undefined : new HeraldClientError(0, "network", `WebSocket closed (${event.code})`));
  };
  return {
    close: () => {
      done = true;
      clearInterval(pinger);
      socket.close(1000);
    },
  };
};
