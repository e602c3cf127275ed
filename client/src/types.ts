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
  /** What the message is the latest value of ("cpu", "price:ACME"): see `latest()` and `mode: "latest"`. */
  readonly key?: string;
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

/**
 * A `mode: "latest"` subscription fell behind (or resumed from an old cursor) and the server left out
 * `skipped` older messages of keys that have a newer one; what follows is the newest of each.
 */
export interface ConflatedEvent {
  readonly mailbox: string;
  readonly skipped: number;
}

/** GET …/latest: the newest retained message of each key, and the cursor to subscribe from. */
export interface LatestSnapshot {
  /** The newest message of each key, in seq order; messages without a key are not in it. */
  readonly messages: readonly HeraldMessage[];
  /** The mailbox's head when the snapshot was taken: subscribing from it misses nothing and repeats nothing. */
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

/** A reader on a mailbox: its token's `sub` (or the `reader` name it gave), and the token's public `info`. */
export interface PresenceMember {
  readonly sub: string;
  readonly info: Record<string, unknown> | null;
  /** Its open streams, WebSocket subscriptions and waiting long-polls on the mailbox, over every node. */
  readonly connections: number;
  /** When it arrived (ISO time). */
  readonly since: string;
}

/** Who is on a mailbox: GET …/presence. `members` is absent above the server's presence.maxMembers. */
export interface PresenceAnswer {
  readonly mailbox: string;
  readonly count: number;
  readonly members?: readonly PresenceMember[];
}

/**
 * Presence events of a subscription opened with `presence: true`: a `presence` snapshot at open (replace
 * what you have), then `join` and `leave` once per reader (not per tab). Above the server's bound the
 * snapshot and later updates carry only `count`, at most once a second.
 */
export type PresenceEvent =
  | ({ readonly type: "presence" } & PresenceAnswer)
  | {
      readonly type: "join" | "leave";
      readonly mailbox: string;
      readonly sub: string;
      readonly info: Record<string, unknown> | null;
      /** On a join: when the reader's earliest connection opened (ISO 8601). */
      readonly since?: string;
      /** Readers present after this event. */
      readonly count: number;
    };

/** A reader's read position in a mailbox; `unread` counts retained messages after it. */
export interface ReadState {
  readonly mailbox: string;
  readonly seq: number;
  /** The position as a cursor (of this mailbox alone). */
  readonly cursor: string;
  readonly unread: number;
}

/** The subscription's reader moved its read position in `mailbox` (from this tab, another, or another device). */
export interface ReadEvent extends ReadState {
  readonly type: "read";
}

/** The reader's unread count of `mailbox` (subscriptions opened with `unread: true`). */
export interface UnreadEvent {
  readonly type: "unread";
  readonly mailbox: string;
  readonly unread: number;
}

/** What streams carry about readers beside messages; none of them moves the cursor. */
export type ReaderEvent = PresenceEvent | ReadEvent | UnreadEvent;
