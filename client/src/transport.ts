import type { HeraldClientError } from "./errors.js";
import type { GapEvent, HeraldMessage, ReaderEvent, WebSocketConstructor } from "./types.js";

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
