import { type FrameFormat, type GapNotice, withCursor } from "../core/delivery.js";
import type { StoredMessage } from "../store/mailbox-store.js";

function gapJson(gaps: readonly GapNotice[], cursor: string): string {
  return `{"type":"gap","gaps":${JSON.stringify(gaps)},"cursor":"${cursor}"}`;
}

/** Server-Sent Events: `id:` carries the cursor, so EventSource resumes by itself. */
export const SSE_FORMAT: FrameFormat = {
  message: (message: StoredMessage, cursor: string) =>
    `id: ${cursor}\nevent: message\ndata: ${withCursor(message.json, cursor)}\n\n`,
  gap: (gaps, cursor) => `id: ${cursor}\nevent: gap\ndata: ${gapJson(gaps, cursor)}\n\n`,
};

/** JSON lines: one object a line, each naming its type. */
export const NDJSON_FORMAT: FrameFormat = {
  message: (message: StoredMessage, cursor: string) =>
    `{"type":"message",${withCursor(message.json, cursor).slice(1)}\n`,
  gap: (gaps, cursor) => `${gapJson(gaps, cursor)}\n`,
};

export const SSE_HEARTBEAT = ": heartbeat\n\n";

/**
 * The first frame of a stream: where it starts. A client that drops before any
 * message (say it asked for cursor=now) resumes from here instead of from "now".
 */
export function sseOpening(retryMs: number, cursor: string): string {
  return `retry: ${retryMs}\nid: ${cursor}\nevent: cursor\ndata: {"type":"cursor","cursor":"${cursor}"}\n\n`;
}

export function ndjsonOpening(cursor: string): string {
  return `{"type":"cursor","cursor":"${cursor}"}\n`;
}
export const NDJSON_HEARTBEAT = '{"type":"heartbeat"}\n';

/** Ends a stream whose token expired; the client fetches a new token and resumes by cursor. */
export const SSE_AUTH_EXPIRED = 'event: auth-expired\ndata: {"type":"auth-expired"}\n\n';
export const NDJSON_AUTH_EXPIRED = '{"type":"auth-expired"}\n';
