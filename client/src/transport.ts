import type { HeraldClientError } from "./errors.js";
import type { ConflatedEvent, GapEvent, HeraldMessage, ReaderEvent, WebSocketConstructor } from "./types.js";
import type { StreamView } from "./view.js";

export interface TransportRequest {
  readonly baseUrl: string;
  readonly mailboxes: readonly string[];
  /** Undefined reads from the earliest retained message. */
  readonly cursor: string | undefined;
  readonly token: string | undefined;
  readonly fetch: typeof fetch;
  readonly WebSocket: WebSocketConstructor | undefined;
  /** Seconds a long-poll asks the server to hold. */
  readonly longPollWaitSeconds: number;
  /** What the subscription asks beyond messages; sent only when set, so older servers see the same requests. */
  readonly extras: StreamExtras;
  /** Filters and mode; empty for every message. */
  readonly view: StreamView;
}

export interface StreamExtras {
  /** The name of a reader without a token. */
  readonly reader?: string | undefined;
  readonly presence?: boolean | undefined;
  readonly unread?: boolean | undefined;
}

/** The query parameters of `extras` for the HTTP transports. */
export function extrasQuery(extras: StreamExtras): Record<string, string | undefined> {
  return {
    reader: extras.reader,
    presence: extras.presence ? "1" : undefined,
    unread: extras.unread ? "1" : undefined,
  };
}

/** What one connection reports, in order; `closed` comes exactly once and nothing follows it. */
export interface TransportEvents {
  /** Bytes arrived (an event, a heartbeat, an answer): the path to the server works. */
  alive(): void;
  message(message: HeraldMessage): void;
  gap(gap: GapEvent): void;
  /** The server moved the cursor past messages the filter left out (or said where a stream starts): adopt it. */
  cursor(cursor: string): void;
  /** `mode: "latest"` left out older messages of keys with a newer one. */
  conflated(event: ConflatedEvent): void;
  /** Presence, read and unread events; they do not move the cursor. */
  reader(event: ReaderEvent): void;
  /** The connection ended: cleanly when `error` is undefined. `fallback` means this transport cannot work here. */
  closed(error?: HeraldClientError, fallback?: boolean): void;
}

export interface TransportHandle {
  /** Ends the connection; no event follows. */
  close(): void;
}

export type Transport = (request: TransportRequest, events: TransportEvents) => TransportHandle;

/** The cursor of a `{"type":"cursor"}` frame, if it carries one. */
export function frameCursor(frame: unknown): string | undefined {
  const cursor = (frame as { cursor?: unknown } | null)?.cursor;
  return typeof cursor === "string" && cursor.length > 0 ? cursor : undefined;
}

/** A `{"type":"conflated"}` frame (or an item of a read's `conflated` list) as the handler gets it. */
export function conflatedEvent(frame: unknown): ConflatedEvent | undefined {
  const { mailbox, skipped } = (frame ?? {}) as { mailbox?: unknown; skipped?: unknown };
  return typeof mailbox === "string" && typeof skipped === "number" ? { mailbox, skipped } : undefined;
}
