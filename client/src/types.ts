/** A message as Herald delivers it, with the subscription's cursor just after it. */
export interface HeraldMessage {
  readonly id: string;
  readonly mailbox: string;
  readonly seq: number;
  readonly time: string;
  readonly expires: string;
  readonly cursor: string;
  readonly title?: string;
  readonly body?: string;
  readonly data?: unknown;
  readonly tags?: readonly string[];
  readonly priority?: number;
  readonly ttl?: number;
}

// The server's own definition of what a publisher may set. A type-only export: esbuild drops it, so the
// bundle carries no server code, and the client cannot drift from what the server accepts.
export type { MessageFields } from "../../src/core/message-input.js";

export type GapReason = "epoch" | "expired" | "trimmed";

/** The server could not deliver everything after the cursor; delivery continues from its earliest message. */
export interface GapEvent {
  readonly gaps: readonly { readonly mailbox: string; readonly reason: GapReason }[];
  readonly cursor: string;
}

export type TransportName = "sse" | "long-poll" | "websocket";

export interface SubscriptionStatus {
  readonly state: "connecting" | "open" | "closed";
  /** The transport in use; a follower tab reports the leader's. */
  readonly transport: TransportName;
  /** "leader" holds the connection for every tab of this origin; "follower" listens to it; "solo" shares nothing. */
  readonly role: "leader" | "follower" | "solo";
}

/** Returns a fresh token; called before every connection attempt and publish, so it can refresh an expiring one. */
export type TokenProvider = () => string | undefined | Promise<string | undefined>;

/** Enough of the WebSocket API for the client; the browser's, or `ws` in Node 20. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
