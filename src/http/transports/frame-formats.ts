import { type FrameFormat, type GapNotice, withCursor } from "../../core/delivery.js";
import type { StoredMessage } from "../../store/mailbox-store.js";

/**
 * Every wire format of a long-lived response, in one place. The hub caches
 * frames per FrameFormat object, so transports that share one (ndjson and
 * WebSocket) share the framing work of a fan-out round too.
 */
export interface WireFormat extends FrameFormat {
  /** The first frame of a stream: where it starts. A client that drops before any message resumes from here. */
  opening(cursor: string, retryMs: number): string;
  /** Written on idle streams so proxies keep them and clients know the server is there. */
  readonly heartbeat: string;
  /** The last frame when the caller's token expires; the client renews it and resumes by cursor. */
  readonly authExpired: string;
  /** The response's Content-Type when not the transport's own (an adapter's raw text stream). */
  readonly contentType?: string;
}

function gapJson(gaps: readonly GapNotice[], cursor: string): string {
  return `{"type":"gap","gaps":${JSON.stringify(gaps)},"cursor":"${cursor}"}`;
}

/** Where a stream is: its opening frame, and where a filter moved it past messages without one. */
function cursorJson(cursor: string): string {
  return `{"type":"cursor","cursor":"${cursor}"}`;
}

/** Server-Sent Events: `id:` carries the cursor, so EventSource resumes by itself. */
export const SSE_FORMAT: WireFormat = {
  message: (message: StoredMessage, cursor: string) =>
    `id: ${cursor}\nevent: message\ndata: ${withCursor(message.json, cursor)}\n\n`,
  gap: (gaps, cursor) => `id: ${cursor}\nevent: gap\ndata: ${gapJson(gaps, cursor)}\n\n`,
  moved: (cursor) => `id: ${cursor}\nevent: cursor\ndata: ${cursorJson(cursor)}\n\n`,
  event: (name, json) => `event: ${name}\ndata: ${json}\n\n`,
  opening: (cursor, retryMs) => `retry: ${retryMs}\nid: ${cursor}\nevent: cursor\ndata: ${cursorJson(cursor)}\n\n`,
  heartbeat: ": heartbeat\n\n",
  authExpired: 'event: auth-expired\ndata: {"type":"auth-expired"}\n\n',
};

/**
 * JSON lines: one object a line, each naming its type. WebSocket messages are
 * the same objects, one per message (the socket splits a write at newlines).
 */
export const JSON_LINES_FORMAT: WireFormat = {
  message: (message: StoredMessage, cursor: string) =>
    `{"type":"message",${withCursor(message.json, cursor).slice(1)}\n`,
  gap: (gaps, cursor) => `${gapJson(gaps, cursor)}\n`,
  moved: (cursor) => `${cursorJson(cursor)}\n`,
  event: (_name, json) => `${json}\n`,
  opening: (cursor) => `${cursorJson(cursor)}\n`,
  heartbeat: '{"type":"heartbeat"}\n',
  authExpired: '{"type":"auth-expired"}\n',
};
