import type { HeraldClientError } from "./errors.js";
import type { GapEvent, HeraldMessage, WebSocketConstructor } from "./types.js";

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
}

/** What one connection reports, in order; `closed` comes exactly once and nothing follows it. */
export interface TransportEvents {
  /** Bytes arrived (an event, a heartbeat, an answer): the path to the server works. */
  alive(): void;
  message(message: HeraldMessage): void;
  gap(gap: GapEvent): void;
  /** The connection ended: cleanly when `error` is undefined. `fallback` means this transport cannot work here. */
  closed(error?: HeraldClientError, fallback?: boolean): void;
}

export interface TransportHandle {
  /** Ends the connection; no event follows. */
  close(): void;
}

export type Transport = (request: TransportRequest, events: TransportEvents) => TransportHandle;
